{{/*
Helpers shared by the chart's own objects and by the sidecar template (_sidecar.tpl). Every helper that
the sidecar also uses reads only .Values, .Release.Name and .Chart.Name from its context, so a parent
chart can call it with a dict built from this chart's values.
*/}}

{{- define "alikafka-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "alikafka-exporter.fullname" -}}
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

{{- define "alikafka-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "alikafka-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alikafka-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "alikafka-exporter.labels" -}}
helm.sh/chart: {{ include "alikafka-exporter.chart" . }}
{{ include "alikafka-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "alikafka-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "alikafka-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "alikafka-exporter.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Where the pod sees its files. */}}
{{- define "alikafka-exporter.configDir" -}}/etc/alikafka-exporter/config{{- end }}
{{- define "alikafka-exporter.credentialsDir" -}}/etc/alikafka-exporter/credentials{{- end }}
{{- define "alikafka-exporter.rrsaTokenDir" -}}/var/run/secrets/ack.alibabacloud.com/rrsa-tokens{{- end }}

{{/* The Secret holding the AccessKey: the existing one, the chart-managed one, or "" (none). */}}
{{- define "alikafka-exporter.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else if or .Values.credentials.accessKeyId .Values.credentials.accessKeySecret }}
{{- include "alikafka-exporter.fullname" . }}
{{- end }}
{{- end }}

{{/* Whether the Secret carries an STS security token. */}}
{{- define "alikafka-exporter.hasSecurityToken" -}}
{{- if and .Values.credentials.existingSecret .Values.credentials.existingSecretKeys.securityToken }}true{{ end }}
{{- end }}

{{/*
Cross-field rules that a JSON schema cannot say clearly; each failure names the values to change.
*/}}
{{- define "alikafka-exporter.validate" -}}
{{- $v := .Values }}
{{- $c := $v.credentials }}
{{- if and (or $c.accessKeyId $c.accessKeySecret) (not (and $c.accessKeyId $c.accessKeySecret)) }}
{{- fail "credentials.accessKeyId and credentials.accessKeySecret must be set together" }}
{{- end }}
{{- if and $c.existingSecret (or $c.accessKeyId $c.accessKeySecret) }}
{{- fail "set either credentials.existingSecret or credentials.accessKeyId/accessKeySecret, not both" }}
{{- end }}
{{- if include "alikafka-exporter.credentialsSecret" . }}
{{- range $key := list "access_key_id_file" "access_key_secret_file" "security_token_file" }}
{{- if hasKey ($v.config.credentials | default dict) $key }}
{{- fail (printf "config.credentials.%s is managed by the chart when credentials.* are set: remove config.credentials.%s" $key $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.rrsa.enabled (include "alikafka-exporter.credentialsSecret" .) }}
{{- fail "rrsa.enabled and an AccessKey in credentials.* exclude each other (the AccessKey would win): choose one" }}
{{- end }}
{{- if and $v.rrsa.enabled (eq $v.rrsa.mode "webhook") (not $v.rrsa.roleName) }}
{{- fail "rrsa.mode=webhook needs rrsa.roleName (the RAM role for the pod-identity.alibabacloud.com/role-name annotation)" }}
{{- end }}
{{- if and $v.rrsa.enabled (eq $v.rrsa.mode "webhook") (not $v.serviceAccount.create) }}
{{- fail "rrsa.mode=webhook annotates the chart's ServiceAccount: set serviceAccount.create=true, or annotate your own ServiceAccount and leave rrsa.enabled=false" }}
{{- end }}
{{- if and $v.rrsa.enabled (eq $v.rrsa.mode "manual") (not (and $v.rrsa.roleArn $v.rrsa.oidcProviderArn)) }}
{{- fail "rrsa.mode=manual needs rrsa.roleArn and rrsa.oidcProviderArn" }}
{{- end }}
{{- if hasKey ($v.config.web | default dict) "listen_address" }}
{{- fail "config.web.listen_address is set by the chart from `port`: remove it and set port instead" }}
{{- end }}
{{- if and $v.sharding.enabled (hasKey $v.config "shard") }}
{{- fail "config.shard and sharding.enabled exclude each other: sharding gives each Deployment its own --shard I/N" }}
{{- end }}
{{- range $v.extraArgs }}
{{- $flag := regexReplaceAll "[= ].*$" . "" }}
{{- if has $flag (list "--config.file" "--web.listen-address" "--shard" "--target") }}
{{- fail (printf "extraArgs: %s is set by the chart (use config, port or sharding instead)" $flag) }}
{{- end }}
{{- end }}
{{- if and $v.standalone (not $v.config.targets) (not (has "--demo" $v.extraArgs)) }}
{{- fail "config.targets is empty: list at least one target (instance_id and groups, or instances: all), see docs/configuration.md" }}
{{- end }}
{{- end }}

{{/* The effective configuration file: config plus what the chart manages (credential paths, qps share). */}}
{{- define "alikafka-exporter.configYaml" -}}
{{- $cfg := deepCopy .Values.config }}
{{- if include "alikafka-exporter.credentialsSecret" . }}
{{- $dir := include "alikafka-exporter.credentialsDir" . }}
{{- $creds := dict "access_key_id_file" (printf "%s/access_key_id" $dir) "access_key_secret_file" (printf "%s/access_key_secret" $dir) }}
{{- if include "alikafka-exporter.hasSecurityToken" . }}
{{- $_ := set $creds "security_token_file" (printf "%s/security_token" $dir) }}
{{- end }}
{{- $_ := set $cfg "credentials" (merge $creds ($cfg.credentials | default dict)) }}
{{- end }}
{{- if and .Values.sharding.enabled .Values.sharding.splitMaxQps }}
{{- $api := $cfg.api | default dict }}
{{- $qps := $api.max_qps | default 3 }}
{{- /* floored to 0.01 so the shards together never exceed the total */}}
{{- $share := divf (floor (mulf (divf $qps .Values.sharding.shards) 100)) 100 }}
{{- if le $share 0.0 }}
{{- fail (printf "config.api.max_qps (%v) split over %v shards is below 0.01 per shard: raise max_qps or use fewer shards" $qps .Values.sharding.shards) }}
{{- end }}
{{- $_ := set $api "max_qps" $share }}
{{- $_ := set $cfg "api" $api }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The metrics path: config.web.telemetry_path or the exporter's default. */}}
{{- define "alikafka-exporter.telemetryPath" -}}
{{- dig "web" "telemetry_path" "/metrics" .Values.config }}
{{- end }}

{{/*
The exporter container. Context: dict with "ctx" (the chart context or a look-alike dict), "args" (the
mode's own arguments), "env" (extra EnvVar maps), "mounts" (extra VolumeMount maps), "name", "port", "portName" and "volumePrefix".
A sidecar (portName lag-metrics) gets no readiness probe: it must not hold the application's pod out of
its Service while it waits for its first poll.
*/}}
{{- define "alikafka-exporter.container" -}}
{{- $v := .ctx.Values }}
{{- $rrsaManual := and $v.rrsa.enabled (eq $v.rrsa.mode "manual") }}
- name: {{ .name }}
  image: {{ include "alikafka-exporter.image" .ctx | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args:
    {{- range .args }}
    - {{ . | quote }}
    {{- end }}
    {{- range $v.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- $env := concat (.env | default list) (ternary (list
      (dict "name" "ALIBABA_CLOUD_ROLE_ARN" "value" $v.rrsa.roleArn)
      (dict "name" "ALIBABA_CLOUD_OIDC_PROVIDER_ARN" "value" $v.rrsa.oidcProviderArn)
      (dict "name" "ALIBABA_CLOUD_OIDC_TOKEN_FILE" "value" (printf "%s/token" (include "alikafka-exporter.rrsaTokenDir" .ctx))))
      list $rrsaManual) $v.extraEnv }}
  {{- with $env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: {{ .portName }}
      containerPort: {{ .port }}
      protocol: TCP
  {{- with $v.livenessProbe }}
  livenessProbe:
    {{- include "alikafka-exporter.probe" (dict "probe" . "portName" $.portName) | nindent 4 }}
  {{- end }}
  {{- with (ternary nil $v.readinessProbe (eq .portName "lag-metrics")) }}
  readinessProbe:
    {{- include "alikafka-exporter.probe" (dict "probe" . "portName" $.portName) | nindent 4 }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: {{ .volumePrefix }}tmp
      mountPath: /tmp
    {{- if include "alikafka-exporter.credentialsSecret" .ctx }}
    - name: {{ .volumePrefix }}credentials
      mountPath: {{ include "alikafka-exporter.credentialsDir" .ctx }}
      readOnly: true
    {{- end }}
    {{- if $rrsaManual }}
    - name: {{ .volumePrefix }}rrsa-oidc-token
      mountPath: {{ include "alikafka-exporter.rrsaTokenDir" .ctx }}
      readOnly: true
    {{- end }}
    {{- with .mounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* A probe whose httpGet port "http" is renamed to the container's port name (the sidecar's differs). */}}
{{- define "alikafka-exporter.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if and $probe.httpGet (eq (toString $probe.httpGet.port) "http") }}
{{- $_ := set $probe.httpGet "port" .portName }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/* The volumes the container mounts. Same context as the container, plus "secretMode". */}}
{{- define "alikafka-exporter.volumes" -}}
{{- $v := .ctx.Values }}
- name: {{ .volumePrefix }}tmp
  emptyDir:
    sizeLimit: {{ $v.tmpSizeLimit }}
{{- $secret := include "alikafka-exporter.credentialsSecret" .ctx }}
{{- if $secret }}
{{- $keys := $v.credentials.existingSecretKeys }}
- name: {{ .volumePrefix }}credentials
  secret:
    secretName: {{ $secret }}
    defaultMode: {{ .secretMode }}
    items:
      {{- if $v.credentials.existingSecret }}
      - key: {{ $keys.accessKeyId }}
        path: access_key_id
      - key: {{ $keys.accessKeySecret }}
        path: access_key_secret
      {{- if include "alikafka-exporter.hasSecurityToken" .ctx }}
      - key: {{ $keys.securityToken }}
        path: security_token
      {{- end }}
      {{- else }}
      - key: access_key_id
        path: access_key_id
      - key: access_key_secret
        path: access_key_secret
      {{- end }}
{{- end }}
{{- if and $v.rrsa.enabled (eq $v.rrsa.mode "manual") }}
- name: {{ .volumePrefix }}rrsa-oidc-token
  projected:
    defaultMode: {{ .secretMode }}
    sources:
      - serviceAccountToken:
          audience: sts.aliyuncs.com
          expirationSeconds: {{ $v.rrsa.tokenExpirationSeconds }}
          path: token
{{- end }}
{{- end }}
