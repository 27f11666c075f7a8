"""``python -m cptr.training`` (and ``torchrun -m cptr.training``) == ``cptr-train``."""

from cptr.training.cli import main

if __name__ == "__main__":
    main()
