{{/*
Names. Kubernetes names are at most 63 characters (DNS labels).
*/}}
{{- define "weir.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "weir.fullname" -}}
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

{{/* The admin Service name; the suffix survives truncation. */}}
{{- define "weir.adminName" -}}
{{- printf "%s-admin" (include "weir.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "weir.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "weir.labels" -}}
helm.sh/chart: {{ include "weir.chart" . }}
{{ include "weir.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: weir
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: immutable once deployed, so nothing that changes between releases. */}}
{{- define "weir.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weir.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "weir.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "weir.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "weir.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The preStop `sleep` action is on by default from Kubernetes 1.30 (beta; alpha in 1.29, absent
in 1.28). On older clusters the hook is left out and the process's own drain (readiness 503
at SIGTERM while it keeps serving for --drain-seconds) covers endpoint propagation.
*/}}
{{- define "weir.hasSleepAction" -}}
{{- if semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version }}true{{ end }}
{{- end }}

{{/* The admin Service exists when asked for, or when a ServiceMonitor scrapes through it. */}}
{{- define "weir.adminServiceEnabled" -}}
{{- if or .Values.adminService.enabled .Values.metrics.serviceMonitor.enabled }}true{{ end }}
{{- end }}

{{/* Where the TLS Secret is mounted: a directory, so Secret updates reach the process. */}}
{{- define "weir.tlsDir" -}}
/etc/weir/tls
{{- end }}

{{/*
The gateway settings file: the config values, without an empty rateLimit, and the `tls`
settings when tls.secretName is set (certificates from the mounted Secret).
*/}}
{{- define "weir.gatewayConfig" -}}
{{- $c := deepCopy .Values.config }}
{{- if not $c.rateLimit }}
{{- $_ := unset $c "rateLimit" }}
{{- end }}
{{- with .Values.tls }}
{{- if .secretName }}
{{- $dir := include "weir.tlsDir" $ }}
{{- $tls := dict "certificates" (list (dict "certFile" (printf "%s/tls.crt" $dir) "keyFile" (printf "%s/tls.key" $dir))) "minVersion" (toString .minVersion) }}
{{- if .plainPort }}
{{- $_ := set $tls "port" .plainPort }}
{{- if .redirectHttp }}
{{- $_ := set $tls "redirectHttp" true }}
{{- end }}
{{- end }}
{{- $_ := set $c "tls" $tls }}
{{- end }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/*
Render-time checks that a JSON schema cannot express.
*/}}
{{- define "weir.validate" -}}
{{- $c := .Values.config }}
{{- if eq (int $c.port) (int $c.adminPort) }}
{{- fail "config.adminPort must differ from config.port: the admin port keeps health, stats, debug and echo off the public Service" }}
{{- end }}
{{- if not $c.health.enabled }}
{{- fail "config.health.enabled must be true: the liveness, readiness and startup probes use it" }}
{{- end }}
{{- $s := .Values.shutdown }}
{{- if le (int $s.terminationGracePeriodSeconds) (add $s.preStopSleepSeconds $s.delaySeconds $s.drainSeconds | int) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + delaySeconds + drainSeconds (%v), or the kubelet kills the pod mid-drain" $s.terminationGracePeriodSeconds (add $s.preStopSleepSeconds $s.delaySeconds $s.drainSeconds)) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- $t := .Values.tls }}
{{- if $t.secretName }}
{{- if and $t.plainPort (or (eq (int $t.plainPort) (int $c.port)) (eq (int $t.plainPort) (int $c.adminPort))) }}
{{- fail (printf "tls.plainPort (%v) must differ from config.port and config.adminPort" $t.plainPort) }}
{{- end }}
{{- if and $t.redirectHttp (not $t.plainPort) }}
{{- fail "tls.redirectHttp needs tls.plainPort: the redirect is served on that plain-HTTP port" }}
{{- end }}
{{- if and $t.redirectHttp (ne (int .Values.service.httpsPort) (int $c.port)) }}
{{- fail (printf "tls.redirectHttp: the gateway's 308 Location names config.port (%v), the container's TLS port, but service.httpsPort is %v: clients would be sent to a port the Service does not expose. Set service.httpsPort to %v, or leave redirectHttp off (and redirect at the load balancer)" $c.port .Values.service.httpsPort $c.port) }}
{{- end }}
{{- if and $t.plainPort (eq (int .Values.service.port) (int .Values.service.httpsPort)) }}
{{- fail (printf "service.port and service.httpsPort must differ (both %v): with tls.plainPort the Service exposes both" .Values.service.port) }}
{{- end }}
{{- else if or $t.plainPort $t.redirectHttp }}
{{- fail "tls.plainPort and tls.redirectHttp need tls.secretName (TLS on)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not $c.stats.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs config.stats.enabled: there is nothing to scrape otherwise" }}
{{- end }}
{{- end }}

{{/*
What the controller needs where it serves Endpoints, and exactly what its code calls: watch
them (list + watch) and server-side-apply their status, watch Services (metadata only) to
resolve backends given as Services, and record Events (events.k8s.io/v1: create, and patch
for a repeated Event's count). Nothing else.
*/}}
{{- define "weir.rbacRules" -}}
- apiGroups: ["weir.dev"]
  resources: ["endpoints"]
  verbs: ["list", "watch"]
- apiGroups: ["weir.dev"]
  resources: ["endpoints/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
