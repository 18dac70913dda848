{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "act-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; the release name alone when it already contains the chart name. */}}
{{- define "act-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "act-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: call with (dict "ctx" $ "component" "operator"). */}}
{{- define "act-operator.labels" -}}
helm.sh/chart: {{ include "act-operator.chart" .ctx }}
{{ include "act-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: act-operator
{{- end }}

{{- define "act-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "act-operator.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "act-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "act-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Images: the tag defaults to the chart's appVersion. */}}
{{- define "act-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "act-operator.trainerImage" -}}
{{- printf "%s:%s" .Values.trainer.image.repository (default .Chart.AppVersion .Values.trainer.image.tag) }}
{{- end }}

{{/* Namespaces ---------------------------------------------------------------------------- */}}

{{/* Where the stage ServiceAccount is created: stageServiceAccount.namespaces, else the
     watched namespaces, else the release namespace. One name per line. */}}
{{- define "act-operator.stageNamespaces" -}}
{{- $ns := .Values.stageServiceAccount.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- range $ns | uniq }}
{{ . }}
{{- end }}
{{- end }}

{{/* kopf peering: only with more than one replica (one replica runs --standalone). */}}
{{- define "act-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* RBAC rules --------------------------------------------------------------------------- */}}

{{/* Namespaced rules: exactly what act_operator.kube.API_CALLS lists, plus kopf's own needs
     (watching ACTJobs and Jobs, patching ACTJobs for its finalizer and progress annotations,
     posting events, peering). tests/unit/test_rbac.py checks this set, both ways. */}}
{{- define "act-operator.namespacedRules" -}}
- apiGroups: ["act-operator.io"]
  resources: ["actjobs"]
  verbs: ["create", "get", "list", "watch", "patch"]
- apiGroups: ["act-operator.io"]
  resources: ["actexperiments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["act-operator.io"]
  resources: ["actjobs/status", "actexperiments/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if and (include "act-operator.peering" .) .Values.watchNamespaces }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}

{{/* Cluster-scoped rules, needed in both RBAC scopes: kopf discovers custom resources by
     watching CRDs, and with a list of namespaces it watches the namespaces too. */}}
{{- define "act-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- if and (include "act-operator.peering" .) (not .Values.watchNamespaces) }}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}

{{/* kopf's command line without the peering/priority part. */}}
{{- define "act-operator.kopfArgs" -}}
- -m
- act_operator.handlers
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --liveness=http://0.0.0.0:{{ .Values.health.port }}/healthz
- --log-format={{ .Values.logFormat }}
{{- if eq .Values.logLevel "verbose" }}
- --verbose
{{- else if eq .Values.logLevel "debug" }}
- --debug
{{- else if eq .Values.logLevel "quiet" }}
- --quiet
{{- end }}
{{- if include "act-operator.peering" . }}
- --peering={{ include "act-operator.fullname" . }}
{{- else }}
- --standalone
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
