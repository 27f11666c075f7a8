"""CPTR: cartoon portrait style transfer on StyleGAN2, from training to a served product."""

__version__ = "0.1.0"
