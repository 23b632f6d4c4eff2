{{/* The release's resource name: the release name, with the chart's name unless it already holds it. */}}
{{- define "ecvl-router.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ecvl-router.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ecvl-router.labels" -}}
{{ include "ecvl-router.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ecvl-router.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "ecvl-router.secretName" -}}
{{- if .Values.secret.create -}}
{{- include "ecvl-router.fullname" . -}}
{{- else -}}
{{- required "secret.existingSecret is needed when secret.create is false" .Values.secret.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The Redis service's URL, for the gateway's stickiness store (redis.enabled). */}}
{{- define "ecvl-router.redisURL" -}}
{{- printf "redis://%s-redis:%v/0" (include "ecvl-router.fullname" .) .Values.redis.port -}}
{{- end -}}

{{/* The environment variables a configuration map names (its fields ending in _env, at any depth), one a line. */}}
{{- define "ecvl-router.keyVariables" -}}
{{- range $key, $value := . -}}
{{- if and (hasSuffix "_env" $key) $value -}}
{{ $value }}{{ "\n" }}
{{- else if kindIs "map" $value -}}
{{ include "ecvl-router.keyVariables" $value }}
{{- end -}}
{{- end -}}
{{- end -}}
