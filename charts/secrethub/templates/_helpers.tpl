{{/*
Names, labels and the shared bits of the secrethub chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "secrethub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: fullnameOverride, else the release name
with the chart name appended unless it already contains it. Kept short
enough that "-operator-leader-election" still fits in 63 characters.
*/}}
{{- define "secrethub.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 38 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 38 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 38 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "secrethub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource; pass (dict "ctx" $ "component" "core"). */}}
{{- define "secrethub.labels" -}}
helm.sh/chart: {{ include "secrethub.chart" .ctx }}
{{ include "secrethub.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Values.image.tag | default .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: secrethub
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of a component; pass (dict "ctx" $ "component" "core"). */}}
{{- define "secrethub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secrethub.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image reference. */}}
{{- define "secrethub.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The core's service account name. */}}
{{- define "secrethub.core.serviceAccountName" -}}
{{- if .Values.core.serviceAccount.create }}
{{- default (include "secrethub.fullname" .) .Values.core.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.core.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's service account name. */}}
{{- define "secrethub.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "secrethub.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding DATABASE_URL. */}}
{{- define "secrethub.core.databaseSecret" -}}
{{- default (printf "%s-database" (include "secrethub.fullname" .)) .Values.core.database.existingSecret }}
{{- end }}

{{/* The Secret holding the core's TLS certificate. */}}
{{- define "secrethub.core.tlsSecret" -}}
{{- default (printf "%s-tls" (include "secrethub.fullname" .)) .Values.core.tls.existingSecret }}
{{- end }}

{{/* The DNS names of the core's Service, short to fully qualified. */}}
{{- define "secrethub.core.dnsNames" -}}
{{- $svc := include "secrethub.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/* The core's base URL as the operator reaches it. */}}
{{- define "secrethub.coreAddress" -}}
{{- if .Values.operator.coreAddress }}
{{- .Values.operator.coreAddress }}
{{- else if .Values.core.enabled }}
{{- printf "https://%s.%s.svc:%d" (include "secrethub.fullname" .) .Release.Namespace (int .Values.core.service.port) }}
{{- else }}
{{- fail "operator.coreAddress: required when core.enabled is false" }}
{{- end }}
{{- end }}

{{/* The webhook's Service name and the Secret of its serving certificate. */}}
{{- define "secrethub.webhook.serviceName" -}}
{{- printf "%s-webhook" (include "secrethub.fullname" .) }}
{{- end }}
{{- define "secrethub.webhook.certSecret" -}}
{{- printf "%s-webhook-tls" (include "secrethub.fullname" .) }}
{{- end }}

{{/*
Where the operator reads the webhook's serving certificate: the default
directory of controller-runtime's webhook server (os.TempDir() + this
suffix), so no flag is needed.
*/}}
{{- define "secrethub.webhook.certDir" -}}
/tmp/k8s-webhook-server/serving-certs
{{- end }}

{{/*
Fails the render for combinations the schema cannot express.
*/}}
{{- define "secrethub.validate" -}}
{{- if and .Values.webhook.enabled (not .Values.operator.enabled) }}
{{- fail "webhook.enabled: the webhook is served by the operator; set operator.enabled too (or webhook.enabled=false)" }}
{{- end }}
{{- if and (not .Values.core.enabled) .Values.operator.enabled (not .Values.operator.coreAddress) }}
{{- fail "operator.coreAddress: required when core.enabled is false" }}
{{- end }}
{{- end }}
