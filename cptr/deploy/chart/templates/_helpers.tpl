{{/*
Names and labels shared by every object of the chart.
*/}}
{{- define "cptr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name, at most 63 characters (a DNS label). */}}
{{- define "cptr.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "cptr.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "cptr.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cptr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cptr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cptr.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "cptr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: triton
cptr/style: {{ .Values.models.style | quote }}
{{- end -}}

{{/* Triton's --model-repository: the mounted volume, or the object-storage URI Triton reads itself. */}}
{{- define "cptr.modelRepository" -}}
{{- if and .Values.modelRepository.pvc.claimName .Values.modelRepository.uri -}}
{{- fail "set either modelRepository.pvc.claimName or modelRepository.uri, not both" -}}
{{- else if .Values.modelRepository.uri -}}
{{- .Values.modelRepository.uri -}}
{{- else if .Values.modelRepository.pvc.claimName -}}
{{- .Values.modelRepository.mountPath -}}
{{- else -}}
{{- fail "set modelRepository.pvc.claimName (a PersistentVolumeClaim holding the repository) or modelRepository.uri (s3://, gs://, as://)" -}}
{{- end -}}
{{- end -}}
