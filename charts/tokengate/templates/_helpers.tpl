{{- define "tokengate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tokengate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tokengate.labels" -}}
app.kubernetes.io/name: {{ include "tokengate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tokengate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokengate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tokengate.secretName" -}}
{{- default (printf "%s-secrets" (include "tokengate.fullname" .)) .Values.secret.existingSecret -}}
{{- end -}}

{{/* The tokengate config: the user's, with the pod-local wiring forced. */}}
{{- define "tokengate.config" -}}
{{- $cfg := deepCopy .Values.tokengate.config -}}
{{- $_ := set $cfg "listen" (printf ":%d" (int .Values.tokengate.port)) -}}
{{- /* The kubelet probes the pod IP; nothing else should reach the admin port (NetworkPolicy). */ -}}
{{- $_ := set $cfg "admin_listen" (printf "${POD_IP}:%d" (int .Values.tokengate.adminPort)) -}}
{{- $_ := set $cfg "upstream" (printf "http://127.0.0.1:%d" (int .Values.receiver.port)) -}}
{{- /* A refresh token that rotates cannot be shared by replicas: each would
     spend it, and the vendor's reuse detection revokes the grant. */ -}}
{{- range $e := (default list $cfg.egress) -}}
{{- if and (eq (toString (dig "token" "grant" "" $e)) "authorization_code") (gt (int $.Values.replicaCount) 1) -}}
{{- fail (printf "egress %s uses grant: authorization_code: its refresh token rotates, and %d replicas sharing it would race on every refresh (the vendor's reuse detection then revokes the grant). Set replicaCount: 1 for this release, or run that egress in a separate release with replicaCount: 1." $e.name (int $.Values.replicaCount)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
