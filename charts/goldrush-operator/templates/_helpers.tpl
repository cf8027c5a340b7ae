{{/*
Labels of every object: the same as the kustomize tree (deploy/) plus Helm's own.
*/}}
{{- define "goldrush-operator.labels" -}}
app.kubernetes.io/name: goldrush-operator
app.kubernetes.io/part-of: goldrush-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
The operator pod's selector labels (immutable on a Deployment: equal to the kustomize tree's).
*/}}
{{- define "goldrush-operator.selectorLabels" -}}
app.kubernetes.io/name: goldrush-operator
app.kubernetes.io/component: operator
{{- end }}

{{/*
The image reference: repository@digest, or repository:tag (tag defaults to appVersion).
*/}}
{{- define "goldrush-operator.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/*
The ServiceAccount as an RBAC subject.
*/}}
{{- define "goldrush-operator.subject" -}}
- kind: ServiceAccount
  name: goldrush-operator
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
The operator's rules on its own objects (shared by the ClusterRole and the per-namespace Roles).
*/}}
{{- define "goldrush-operator.objectRules" -}}
# The custom resource: kopf lists and watches it; the operator patches metadata (its finalizer, annotations).
- apiGroups: ["goldrush.dev"]
  resources: ["goldrushpipelines"]
  verbs: ["list", "watch", "patch"]
# The status subresource: phase, conditions and observedGeneration.
- apiGroups: ["goldrush.dev"]
  resources: ["goldrushpipelines/status"]
  verbs: ["patch"]
# Credentials objects: kopf lists and watches them; the operator patches their status (no finalizer).
- apiGroups: ["goldrush.dev"]
  resources: ["goldrushcredentials"]
  verbs: ["list", "watch"]
- apiGroups: ["goldrush.dev"]
  resources: ["goldrushcredentials/status"]
  verbs: ["patch"]
{{- end }}

{{/*
ConfigMap reads and Event creation (shared by the ClusterRole and the per-namespace Roles).
*/}}
{{- define "goldrush-operator.supportRules" -}}
# ABI files referenced by spec.abi.configMapRef: single reads by name.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# Events on state transitions, never updated.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Secrets referenced by pipelines: list + watch follow changes (rotation reaches the API within
seconds), get reads a referenced Secret. Read-only.
*/}}
{{- define "goldrush-operator.secretRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end }}
