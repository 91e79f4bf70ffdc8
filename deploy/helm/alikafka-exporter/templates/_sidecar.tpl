{{/*
The exporter as a sidecar of a consumer application, for charts that depend on this one.

In the application chart's pod template:

  containers:
    - name: app
      ...
    {{- include "alikafka-exporter.sidecar" (dict "chart" (index .Subcharts "alikafka-exporter")
          "instanceId" "alikafka_post-cn-0pp1abcd0001" "groups" (list "orders-consumer")) | nindent 4 }}
  volumes:
    {{- include "alikafka-exporter.sidecar.volumes" (dict "chart" (index .Subcharts "alikafka-exporter")) | nindent 4 }}

Keys of the dict:
  chart       this chart's context as the parent sees it: (index .Subcharts "alikafka-exporter")
              (or, instead, "Values": (index .Values "alikafka-exporter") with image.tag set, and
              "Release": .Release); set standalone: false in those values
  instanceId  the alikafka instance the application consumes from (required)
  groups      list of the application's consumer groups (or "group": one name) (required)
  region      the instance's region (default: config.api.region)

The sidecar takes its target from these arguments and the rest of `config` through ALIKAFKA_EXPORTER_*
environment variables (targets, shard and the credentials files excepted), so it needs no ConfigMap. Credentials
come from credentials.existingSecret (or the chart-managed Secret) as files, from rrsa.mode=manual, or
from the application pod's own ServiceAccount (RRSA webhook) or node role. Volumes are named
alikafka-exporter-* so they cannot clash with the application's.
*/}}

{{- define "alikafka-exporter.sidecarContext" -}}
{{- /* A look-alike of this chart's context for the shared helpers: Values, Release.Name, Chart.Name/AppVersion. */ -}}
{{- if .chart -}}
{{- toYaml (dict "Values" .chart.Values "Release" (dict "Name" .chart.Release.Name) "Chart" (dict "Name" .chart.Chart.Name "AppVersion" .chart.Chart.AppVersion)) -}}
{{- else -}}
{{- if not .Values }}{{ fail "alikafka-exporter.sidecar: pass \"chart\" (index .Subcharts \"alikafka-exporter\") or \"Values\" (index .Values \"alikafka-exporter\")" }}{{ end -}}
{{- if not (or .Values.image.tag .Values.image.digest) }}{{ fail "alikafka-exporter.sidecar: with \"Values\" instead of \"chart\", set image.tag (the chart's appVersion is not known)" }}{{ end -}}
{{- $release := .Release | default (dict "Name" "release") -}}
{{- toYaml (dict "Values" .Values "Release" (dict "Name" $release.Name) "Chart" (dict "Name" "alikafka-exporter" "AppVersion" .Values.image.tag)) -}}
{{- end -}}
{{- end }}

{{- define "alikafka-exporter.sidecar" -}}
{{- if not .instanceId }}{{ fail "alikafka-exporter.sidecar: pass \"instanceId\" (the alikafka instance the application consumes from)" }}{{ end }}
{{- $groups := .groups | default (ternary (list .group) list (not (empty .group))) }}
{{- if not $groups }}{{ fail "alikafka-exporter.sidecar: pass \"groups\" (a list) or \"group\" (the application's consumer group)" }}{{ end }}
{{- $ctx := include "alikafka-exporter.sidecarContext" . | fromYaml }}
{{- $v := $ctx.Values }}
{{- if or $v.accounts (dig "accounts" nil $v.config) }}{{ fail "alikafka-exporter.sidecar: accounts are for the Deployment modes; the sidecar polls its application's instance with credentials (or rrsa)" }}{{ end }}
{{- $port := int $v.sidecar.port }}
{{- $args := list (printf "--target=%s=%s" .instanceId (join "," $groups)) (printf "--web.listen-address=:%d" $port) }}
{{- with .region }}{{ $args = append $args (printf "--region=%s" .) }}{{ end }}
{{- $env := list }}
{{- range $section, $body := $v.config }}
{{- if not (has $section (list "targets" "shard")) }}
{{- if kindIs "map" $body }}
{{- range $key, $value := $body }}
{{- if and (not (kindIs "invalid" $value)) (not (and (eq $section "credentials") (hasSuffix "_file" $key))) }}
{{- if and (eq $section "web") (eq $key "listen_address") }}{{ fail "config.web.listen_address: the sidecar listens on sidecar.port" }}{{ end }}
{{- $text := ternary (toJson $value) (toString $value) (or (kindIs "map" $value) (kindIs "slice" $value)) }}
{{- $env = append $env (dict "name" (printf "ALIKAFKA_EXPORTER_%s__%s" (upper $section) (upper $key)) "value" $text) }}
{{- end }}
{{- end }}
{{- else }}
{{- $env = append $env (dict "name" (printf "ALIKAFKA_EXPORTER_%s" (upper $section)) "value" (toString $body)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if include "alikafka-exporter.credentialsSecret" $ctx }}
{{- $dir := include "alikafka-exporter.credentialsDir" $ctx }}
{{- $env = append $env (dict "name" "ALIKAFKA_EXPORTER_CREDENTIALS__ACCESS_KEY_ID_FILE" "value" (printf "%s/access_key_id" $dir)) }}
{{- $env = append $env (dict "name" "ALIKAFKA_EXPORTER_CREDENTIALS__ACCESS_KEY_SECRET_FILE" "value" (printf "%s/access_key_secret" $dir)) }}
{{- if include "alikafka-exporter.hasSecurityToken" $ctx }}
{{- $env = append $env (dict "name" "ALIKAFKA_EXPORTER_CREDENTIALS__SECURITY_TOKEN_FILE" "value" (printf "%s/security_token" $dir)) }}
{{- end }}
{{- end }}
{{- include "alikafka-exporter.container" (dict "ctx" $ctx "name" $v.sidecar.containerName "args" $args "env" $env
      "port" $port "portName" "lag-metrics" "volumePrefix" "alikafka-exporter-") | trim }}
{{- end }}

{{- define "alikafka-exporter.sidecar.volumes" -}}
{{- $ctx := include "alikafka-exporter.sidecarContext" . | fromYaml }}
{{- /* sidecar.secretMode, 292 = 0444 by default: the application's pod may have no fsGroup (only the exporter
container mounts these volumes); 288 = 0440 with an fsGroup in the application's pod */}}
{{- include "alikafka-exporter.volumes" (dict "ctx" $ctx "volumePrefix" "alikafka-exporter-" "secretMode" (int $ctx.Values.sidecar.secretMode)) | trim }}
{{- end }}
