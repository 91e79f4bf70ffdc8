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
{{- define "alikafka-exporter.accountsDir" -}}/etc/alikafka-exporter/accounts{{- end }}
{{/* The volume of an account's Secret: a DNS label whatever the account's name (which may hold "_"). */}}
{{- define "alikafka-exporter.accountVolume" -}}account-{{ . | sha256sum | trunc 10 }}{{- end }}
{{- define "alikafka-exporter.rrsaTokenDir" -}}/var/run/secrets/ack.alibabacloud.com/rrsa-tokens{{- end }}
{{- define "alikafka-exporter.webConfigDir" -}}/etc/alikafka-exporter/web{{- end }}
{{- define "alikafka-exporter.tlsDir" -}}/etc/alikafka-exporter/tls{{- end }}
{{- define "alikafka-exporter.clientCADir" -}}/etc/alikafka-exporter/client-ca{{- end }}

{{/*
Web config (--web.config.file). "webConfig" is on with TLS, basic auth or a user's whole file; the file
is the chart's Secret <fullname>-web-config or webConfig.existingSecret. The helpers below return "true"
or "" so that they can be used in conditions.
*/}}
{{- define "alikafka-exporter.webConfigOn" -}}
{{- $w := .Values.webConfig }}
{{- if or $w.tls.enabled $w.basicAuth.enabled $w.existingSecret }}true{{ end }}
{{- end }}

{{- define "alikafka-exporter.webConfigSecret" -}}
{{- if .Values.webConfig.existingSecret }}
{{- .Values.webConfig.existingSecret }}
{{- else if include "alikafka-exporter.webConfigOn" . }}
{{- printf "%s-web-config" (include "alikafka-exporter.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/* Whether TLS asks for client certificates that the kubelet cannot present. */}}
{{- define "alikafka-exporter.clientCertRequired" -}}
{{- $tls := .Values.webConfig.tls }}
{{- if and $tls.enabled (or $tls.clientCA.secretName $tls.clientCA.configMapName) (eq $tls.clientAuthType "RequireAndVerifyClientCert") }}true{{ end }}
{{- end }}

{{/*
Whether HTTP probes are replaced by TCP probes: /healthz and /readyz are behind basic auth and client
certificates like every route, and the kubelet has neither, unless webConfig.probes.httpHeaders gives
it an Authorization header (which then stands in the pod spec for anyone who can read it).
*/}}
{{- define "alikafka-exporter.tcpProbes" -}}
{{- $w := .Values.webConfig }}
{{- if or (include "alikafka-exporter.clientCertRequired" .) (and $w.basicAuth.enabled (not $w.probes.httpHeaders)) }}true{{ end }}
{{- end }}

{{/* The web config file the chart renders from webConfig.tls, webConfig.basicAuth and webConfig.extraConfig. */}}
{{- define "alikafka-exporter.webConfigYaml" -}}
{{- $w := .Values.webConfig }}
{{- $file := dict }}
{{- if $w.tls.enabled }}
{{- $dir := include "alikafka-exporter.tlsDir" . }}
{{- $tls := dict "cert_file" (printf "%s/tls.crt" $dir) "key_file" (printf "%s/tls.key" $dir) "min_version" $w.tls.minVersion }}
{{- if or $w.tls.clientCA.secretName $w.tls.clientCA.configMapName }}
{{- $_ := set $tls "client_ca_file" (printf "%s/ca.crt" (include "alikafka-exporter.clientCADir" .)) }}
{{- $_ := set $tls "client_auth_type" $w.tls.clientAuthType }}
{{- with $w.tls.clientAllowedSans }}
{{- $_ := set $tls "client_allowed_sans" . }}
{{- end }}
{{- end }}
{{- $_ := set $file "tls_server_config" $tls }}
{{- end }}
{{- if $w.basicAuth.enabled }}
{{- $_ := set $file "basic_auth_users" $w.basicAuth.users }}
{{- end }}
{{- toYaml (merge $file (deepCopy $w.extraConfig)) }}
{{- end }}

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
{{- range $name, $a := $v.accounts }}
{{- if $a.existingSecret }}
{{- range $key := list "access_key_id_file" "access_key_secret_file" "security_token_file" }}
{{- if hasKey (dig "accounts" $name "credentials" dict ($v.config | default dict)) $key }}
{{- fail (printf "config.accounts.%s.credentials.%s is managed by the chart when accounts.%s.existingSecret is set: remove it" $name $key $name) }}
{{- end }}
{{- end }}
{{- end }}
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
{{- if eq $flag "--web.config.file" }}
{{- fail "extraArgs: --web.config.file is set by the chart: use webConfig (TLS, basic auth, or webConfig.existingSecret for a whole file)" }}
{{- end }}
{{- end }}
{{- if hasKey ($v.config.web | default dict) "config_file" }}
{{- fail "config.web.config_file is set by the chart: use webConfig (TLS, basic auth, or webConfig.existingSecret for a whole file)" }}
{{- end }}
{{- $w := $v.webConfig }}
{{- if and $w.tls.enabled (not $w.tls.secretName) }}
{{- fail "webConfig.tls.enabled needs webConfig.tls.secretName: a Secret of type kubernetes.io/tls (tls.crt, tls.key), e.g. a cert-manager Certificate's spec.secretName" }}
{{- end }}
{{- if and $w.tls.clientCA.secretName $w.tls.clientCA.configMapName }}
{{- fail "webConfig.tls.clientCA: set secretName or configMapName, not both" }}
{{- end }}
{{- if and (or $w.tls.clientCA.secretName $w.tls.clientCA.configMapName) (not $w.tls.enabled) }}
{{- fail "webConfig.tls.clientCA needs webConfig.tls.enabled (client certificates are part of TLS)" }}
{{- end }}
{{- if and $w.tls.clientAllowedSans (or (ne $w.tls.clientAuthType "RequireAndVerifyClientCert") (not (or $w.tls.clientCA.secretName $w.tls.clientCA.configMapName))) }}
{{- fail "webConfig.tls.clientAllowedSans needs webConfig.tls.clientCA and webConfig.tls.clientAuthType=RequireAndVerifyClientCert" }}
{{- end }}
{{- if and $w.extraConfig.tls_server_config (not $w.tls.enabled) }}
{{- fail "webConfig.extraConfig.tls_server_config needs webConfig.tls.enabled" }}
{{- end }}
{{- if and $w.basicAuth.users (not $w.basicAuth.enabled) }}
{{- fail "webConfig.basicAuth.users is set but webConfig.basicAuth.enabled is false: enable it or remove the users" }}
{{- end }}
{{- if and $w.basicAuth.enabled (not $w.existingSecret) (not $w.basicAuth.users) }}
{{- fail "webConfig.basicAuth.enabled needs webConfig.basicAuth.users (name: bcrypt hash), or webConfig.existingSecret holding the whole web config file" }}
{{- end }}
{{- if and $w.existingSecret (or $w.basicAuth.users $w.extraConfig) }}
{{- fail "webConfig.existingSecret holds the whole web config file: move webConfig.basicAuth.users and webConfig.extraConfig into it" }}
{{- end }}
{{- if and $w.probes.httpHeaders (not $w.basicAuth.enabled) }}
{{- fail "webConfig.probes.httpHeaders is only for basic auth (without it the probes need no header): remove it" }}
{{- end }}
{{- if and $w.probes.httpHeaders (include "alikafka-exporter.clientCertRequired" .) }}
{{- fail "webConfig.probes.httpHeaders cannot help: with clientAuthType=RequireAndVerifyClientCert the kubelet has no client certificate, so the probes are TCP probes; remove it" }}
{{- end }}
{{- $sm := $v.serviceMonitor }}
{{- if and $v.standalone $sm.enabled $w.basicAuth.enabled (not $sm.basicAuth.secretName) }}
{{- fail "webConfig.basicAuth.enabled with serviceMonitor.enabled needs serviceMonitor.basicAuth.secretName: a Secret (in the ServiceMonitor's namespace) with the username and password Prometheus sends" }}
{{- end }}
{{- if and $v.standalone $sm.enabled (include "alikafka-exporter.clientCertRequired" .) (not $sm.tlsConfig.clientCertSecret) }}
{{- fail "webConfig.tls.clientAuthType=RequireAndVerifyClientCert with serviceMonitor.enabled needs serviceMonitor.tlsConfig.clientCertSecret: a kubernetes.io/tls Secret with Prometheus's client certificate" }}
{{- end }}
{{- if and $v.standalone (not $v.config.targets) (not (has "--demo" $v.extraArgs)) }}
{{- fail "config.targets is empty: list at least one target (instance_id and groups, or instances: all), see docs/configuration.md" }}
{{- end }}
{{- end }}

{{/*
One shard's share of config.api.max_qps with sharding.splitMaxQps. The exporter's limiter enforces a rate of
1 or more as whole requests per second (2.5 runs as 2), so a share of 1 or more is a whole number,
floor(max_qps / shards), and the remainder (max_qps - shards x share) is left unused: 3 qps over 2 shards
is 1 each. Below 1 per shard the share is exact (the limiter spaces requests 1 / share apart), floored to
0.01 so the shards together never exceed the total.
*/}}
{{- define "alikafka-exporter.maxQpsShare" -}}
{{- $qps := dig "api" "max_qps" 3 .Values.config | float64 }}
{{- $shards := .Values.sharding.shards }}
{{- $exact := divf $qps $shards }}
{{- if ge $exact 1.0 }}
{{- floor $exact | int }}
{{- else }}
{{- $share := divf (floor (mulf $exact 100)) 100 }}
{{- if le $share 0.0 }}
{{- fail (printf "config.api.max_qps (%v) split over %v shards is below 0.01 per shard: raise max_qps or use fewer shards" $qps $shards) }}
{{- end }}
{{- $share }}
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
{{- if .Values.accounts }}
{{- $accounts := $cfg.accounts | default dict }}
{{- range $name, $a := .Values.accounts }}
{{- $account := get $accounts $name | default dict }}
{{- if $a.existingSecret }}
{{- $dir := printf "%s/%s" (include "alikafka-exporter.accountsDir" $) $name }}
{{- $files := dict "access_key_id_file" (printf "%s/access_key_id" $dir) "access_key_secret_file" (printf "%s/access_key_secret" $dir) }}
{{- if dig "existingSecretKeys" "securityToken" "" $a }}
{{- $_ := set $files "security_token_file" (printf "%s/security_token" $dir) }}
{{- end }}
{{- $_ := set $account "credentials" (merge $files ($account.credentials | default dict)) }}
{{- end }}
{{- if $a.roleArn }}{{ $_ := set $account "role_arn" $a.roleArn }}{{ end }}
{{- if $a.maxQps }}{{ $_ := set $account "max_qps" $a.maxQps }}{{ end }}
{{- if $a.maxConcurrency }}{{ $_ := set $account "max_concurrency" $a.maxConcurrency }}{{ end }}
{{- $_ := set $accounts $name $account }}
{{- end }}
{{- $_ := set $cfg "accounts" $accounts }}
{{- end }}
{{- if and .Values.sharding.enabled .Values.sharding.splitMaxQps }}
{{- $api := $cfg.api | default dict }}
{{- $_ := set $api "max_qps" (include "alikafka-exporter.maxQpsShare" . | float64) }}
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
    {{- if include "alikafka-exporter.webConfigOn" .ctx }}
    - {{ printf "--web.config.file=%s/web-config.yml" (include "alikafka-exporter.webConfigDir" .ctx) | quote }}
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
    {{- include "alikafka-exporter.probe" (dict "probe" . "portName" $.portName "ctx" $.ctx) | nindent 4 }}
  {{- end }}
  {{- with (ternary nil $v.readinessProbe (eq .portName "lag-metrics")) }}
  readinessProbe:
    {{- include "alikafka-exporter.probe" (dict "probe" . "portName" $.portName "ctx" $.ctx) | nindent 4 }}
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
    {{- range $name, $a := $v.accounts }}
    {{- if $a.existingSecret }}
    - name: {{ $.volumePrefix }}{{ include "alikafka-exporter.accountVolume" $name }}
      mountPath: {{ include "alikafka-exporter.accountsDir" $.ctx }}/{{ $name }}
      readOnly: true
    {{- end }}
    {{- end }}
    {{- if $rrsaManual }}
    - name: {{ .volumePrefix }}rrsa-oidc-token
      mountPath: {{ include "alikafka-exporter.rrsaTokenDir" .ctx }}
      readOnly: true
    {{- end }}
    {{- if include "alikafka-exporter.webConfigOn" .ctx }}
    - name: {{ .volumePrefix }}web-config
      mountPath: {{ include "alikafka-exporter.webConfigDir" .ctx }}
      readOnly: true
    {{- end }}
    {{- if $v.webConfig.tls.enabled }}
    - name: {{ .volumePrefix }}tls
      mountPath: {{ include "alikafka-exporter.tlsDir" .ctx }}
      readOnly: true
    {{- end }}
    {{- if and $v.webConfig.tls.enabled (or $v.webConfig.tls.clientCA.secretName $v.webConfig.tls.clientCA.configMapName) }}
    - name: {{ .volumePrefix }}client-ca
      mountPath: {{ include "alikafka-exporter.clientCADir" .ctx }}
      readOnly: true
    {{- end }}
    {{- with .mounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
A probe as the web config allows it. Its httpGet port "http" is renamed to the container's port name
(the sidecar's differs); with TLS it probes over HTTPS (the kubelet does not verify the certificate);
when the kubelet cannot authenticate (basic auth without webConfig.probes.httpHeaders, or required
client certificates) it becomes a TCP probe of the same port with the same timing. Probes that are
not httpGet are kept as they are.
*/}}
{{- define "alikafka-exporter.probe" -}}
{{- $probe := deepCopy .probe }}
{{- $w := .ctx.Values.webConfig }}
{{- if $probe.httpGet }}
{{- if eq (toString $probe.httpGet.port) "http" }}
{{- $_ := set $probe.httpGet "port" .portName }}
{{- end }}
{{- if include "alikafka-exporter.tcpProbes" .ctx }}
{{- $_ := set $probe "tcpSocket" (dict "port" $probe.httpGet.port) }}
{{- $_ := unset $probe "httpGet" }}
{{- else }}
{{- if and $w.tls.enabled (not $probe.httpGet.scheme) }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- if $w.basicAuth.enabled }}
{{- $_ := set $probe.httpGet "httpHeaders" (concat ($probe.httpGet.httpHeaders | default list) $w.probes.httpHeaders) }}
{{- end }}
{{- end }}
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
{{- range $name, $a := $v.accounts }}
{{- if $a.existingSecret }}
{{- $keys := $a.existingSecretKeys | default dict }}
- name: {{ $.volumePrefix }}{{ include "alikafka-exporter.accountVolume" $name }}
  secret:
    secretName: {{ $a.existingSecret }}
    defaultMode: {{ $.secretMode }}
    items:
      - key: {{ $keys.accessKeyId | default "access_key_id" }}
        path: access_key_id
      - key: {{ $keys.accessKeySecret | default "access_key_secret" }}
        path: access_key_secret
      {{- if $keys.securityToken }}
      - key: {{ $keys.securityToken }}
        path: security_token
      {{- end }}
{{- end }}
{{- end }}
{{- with include "alikafka-exporter.webConfigSecret" .ctx }}
- name: {{ $.volumePrefix }}web-config
  secret:
    secretName: {{ . }}
    defaultMode: {{ $.secretMode }}
    items:
      - key: {{ ternary $v.webConfig.existingSecretKey "web-config.yml" (not (empty $v.webConfig.existingSecret)) }}
        path: web-config.yml
{{- end }}
{{- if $v.webConfig.tls.enabled }}
- name: {{ .volumePrefix }}tls
  secret:
    secretName: {{ $v.webConfig.tls.secretName }}
    defaultMode: {{ .secretMode }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- with $v.webConfig.tls.clientCA }}
{{- if .secretName }}
- name: {{ $.volumePrefix }}client-ca
  secret:
    secretName: {{ .secretName }}
    defaultMode: {{ $.secretMode }}
    items:
      - key: {{ .key }}
        path: ca.crt
{{- else if .configMapName }}
- name: {{ $.volumePrefix }}client-ca
  configMap:
    name: {{ .configMapName }}
    items:
      - key: {{ .key }}
        path: ca.crt
{{- end }}
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
