{{/*
Chart name, or nameOverride; truncated to 63 characters because some Kubernetes name fields are limited
to that by the DNS naming spec.
*/}}
{{- define "ingestor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: fullnameOverride, else "<release>-<chart name>" (just the release name when it
already contains the chart name); truncated to 63 characters.
*/}}
{{- define "ingestor.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label (never used in selectors: it changes on upgrade).
*/}}
{{- define "ingestor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels for every resource: the selector labels plus chart, version and management labels.
*/}}
{{- define "ingestor.labels" -}}
helm.sh/chart: {{ include "ingestor.chart" . }}
{{ include "ingestor.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: ingestor
app.kubernetes.io/part-of: marketflow
{{- end }}

{{/*
Selector labels: immutable in a Deployment's selector, so only name and instance (no helm.sh/chart, no
version). Sharded Deployments add `shard: "<index>"` to these.
*/}}
{{- define "ingestor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ingestor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount the pods use: the full name (or serviceAccount.name) when the chart creates
it, else serviceAccount.name or "default".
*/}}
{{- define "ingestor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ingestor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "ingestor.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
Name of the SecretProviderClass (referenced by the CSI volume of every pod).
*/}}
{{- define "ingestor.secretProviderClassName" -}}
{{- include "ingestor.fullname" . }}
{{- end }}

{{/*
Name of the ConfigMap carrying the container's plain environment (everything in .Values.env but SYMBOLS and
USDM_SYMBOLS, which each Deployment sets for its shard).
*/}}
{{- define "ingestor.envConfigMapName" -}}
{{- printf "%s-env" (include "ingestor.fullname" . | trunc 59 | trimSuffix "-") }}
{{- end }}

{{/*
Splits a comma-separated symbol list into a list of trimmed, lower-cased, non-empty symbols (the
ingestor lower-cases symbols too, so BTCUSDT and btcusdt are the same symbol).
Usage: include "ingestor.splitSymbols" "btcusdt, ethusdt" | fromJsonArray
*/}}
{{- define "ingestor.splitSymbols" -}}
{{- $out := list }}
{{- range (toString .) | splitList "," }}
{{- $s := trim . | lower }}
{{- if $s }}
{{- $out = append $out $s }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
One explicit shard's symbols by market: a list is spot symbols (the seed's form), a map may name
`spot` and `usdm` lists. Symbols are cleaned as "ingestor.splitSymbols" does.
Usage: include "ingestor.shardMarkets" $item | fromJson -> {"spot": [...], "usdm": [...]}
*/}}
{{- define "ingestor.shardMarkets" -}}
{{- $lists := dict "spot" list "usdm" list }}
{{- if kindIs "map" . }}
{{- $_ := set $lists "spot" (get . "spot" | default list) }}
{{- $_ := set $lists "usdm" (get . "usdm" | default list) }}
{{- else }}
{{- $_ := set $lists "spot" (. | default list) }}
{{- end }}
{{- $out := dict }}
{{- range $market := list "spot" "usdm" }}
{{- $clean := list }}
{{- range get $lists $market }}
{{- $s := trim (toString .) | lower }}
{{- if $s }}
{{- $clean = append $clean $s }}
{{- end }}
{{- end }}
{{- $_ := set $out $market $clean }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
The Deployments to render, as JSON:
{"shards": [{"name": "...", "index": i or -1, "symbols": [spot...], "usdm": [USD-M...]}]}.
- `shards` set: one entry per item, in order (a list of spot symbols, or {spot: [...], usdm: [...]});
- `shardCount` > 1: env.SYMBOLS and env.USDM_SYMBOLS each split round-robin (symbol k of a market ->
  shard k mod shardCount), so a shard may carry spot symbols, USD-M symbols or both;
- otherwise one unsharded entry (index -1, no `shard` label) with env.SYMBOLS and env.USDM_SYMBOLS.
Fails on empty shards, a symbol in two shards of one market, both keys set, or more shards than the
longer symbol list, so that the shards always cover disjoint symbol sets of each market. A symbol may
be in one shard's spot list and another's USD-M list: they are different instruments.
Usage: (include "ingestor.shards" . | fromJson).shards
*/}}
{{- define "ingestor.shards" -}}
{{- $fullname := include "ingestor.fullname" . }}
{{- $base := $fullname | trunc 52 | trimSuffix "-" }}
{{- $explicit := .Values.shards | default list }}
{{- $count := int (.Values.shardCount | default 0) }}
{{- $spot := include "ingestor.splitSymbols" .Values.env.SYMBOLS | fromJsonArray }}
{{- $usdm := include "ingestor.splitSymbols" (.Values.env.USDM_SYMBOLS | default "") | fromJsonArray }}
{{- if and (gt (len $explicit) 0) (gt $count 1) }}
{{- fail "set either `shards` (explicit symbol lists) or `shardCount` (split env.SYMBOLS), not both" }}
{{- end }}
{{- $out := list }}
{{- if gt (len $explicit) 0 }}
{{- range $i, $item := $explicit }}
{{- $m := include "ingestor.shardMarkets" $item | fromJson }}
{{- if and (eq (len $m.spot) 0) (eq (len $m.usdm) 0) }}
{{- fail (printf "shards[%d] has no symbols" $i) }}
{{- end }}
{{- $out = append $out (dict "name" (printf "%s-shard-%d" $base $i) "index" $i "symbols" $m.spot "usdm" $m.usdm) }}
{{- end }}
{{- else if gt $count 1 }}
{{- if gt $count (max (len $spot) (len $usdm)) }}
{{- if $usdm }}
{{- fail (printf "shardCount %d is larger than the number of symbols in env.SYMBOLS (%d) and in env.USDM_SYMBOLS (%d)" $count (len $spot) (len $usdm)) }}
{{- else }}
{{- fail (printf "shardCount %d is larger than the number of symbols in env.SYMBOLS (%d)" $count (len $spot)) }}
{{- end }}
{{- end }}
{{- range $i := until $count }}
{{- $mine := list }}
{{- range $k, $s := $spot }}
{{- if eq (mod $k $count) $i }}
{{- $mine = append $mine $s }}
{{- end }}
{{- end }}
{{- $mineUsdm := list }}
{{- range $k, $s := $usdm }}
{{- if eq (mod $k $count) $i }}
{{- $mineUsdm = append $mineUsdm $s }}
{{- end }}
{{- end }}
{{- $out = append $out (dict "name" (printf "%s-shard-%d" $base $i) "index" $i "symbols" $mine "usdm" $mineUsdm) }}
{{- end }}
{{- else }}
{{- if and (eq (len $spot) 0) (eq (len $usdm) 0) }}
{{- fail "env.SYMBOLS and env.USDM_SYMBOLS are empty: set at least one symbol (or use `shards`)" }}
{{- end }}
{{- $out = append $out (dict "name" $fullname "index" -1 "symbols" $spot "usdm" $usdm) }}
{{- end }}
{{- range $market := list "spot" "usdm" }}
{{- $seen := dict }}
{{- range $out }}
{{- $shard := . }}
{{- range (eq $market "spot" | ternary .symbols .usdm) }}
{{- if hasKey $seen . }}
{{- fail (printf "%s %q is in two shards (%s and %s): shards must be disjoint" (eq $market "spot" | ternary "symbol" "USD-M symbol") . (get $seen .) $shard.name) }}
{{- end }}
{{- $_ := set $seen . $shard.name }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson (dict "shards" $out) }}
{{- end }}

{{/*
Label matchers selecting this release's series in alert expressions.
*/}}
{{- define "ingestor.seriesSelector" -}}
{{- if .Values.prometheusRule.seriesSelector }}
{{- .Values.prometheusRule.seriesSelector }}
{{- else }}
{{- printf "namespace=%q,job=%q" .Release.Namespace (include "ingestor.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Checks values that the schema cannot express, so that a bad install fails at render time rather than as
a crash-looping pod: Key Vault needs the workload identity client id and the tenant id, and the ingestor
needs a Kafka username and password together or neither. Renders nothing.
*/}}
{{- define "ingestor.validate" -}}
{{- if and .Values.keyVault.enabled (not .Values.azure.workloadIdentity.clientId) }}
{{- fail "keyVault.enabled needs azure.workloadIdentity.clientId (the identity with \"Key Vault Secrets User\" on the vault)" }}
{{- end }}
{{- if and .Values.keyVault.enabled (not .Values.azure.tenantId) }}
{{- fail "keyVault.enabled needs azure.tenantId (the Key Vault's Entra ID tenant)" }}
{{- end }}
{{- $hasPassword := or .Values.keyVault.enabled .Values.existingPasswordSecret.name }}
{{- if and .Values.env.KAFKA_USERNAME (not $hasPassword) }}
{{- fail "env.KAFKA_USERNAME is set but there is no password: enable keyVault, set existingPasswordSecret.name, or empty KAFKA_USERNAME (the ingestor needs both or neither)" }}
{{- end }}
{{- if and $hasPassword (not .Values.env.KAFKA_USERNAME) }}
{{- fail "a Kafka password is configured (keyVault or existingPasswordSecret) but env.KAFKA_USERNAME is empty (the ingestor needs both or neither; Event Hubs: $ConnectionString)" }}
{{- end }}
{{- if and (eq .Values.transport "sbe") (not .Values.keyVault.enabled) }}
{{- fail "transport: sbe needs keyVault.enabled (the SBE API key comes from Key Vault, as the Kafka password does)" }}
{{- end }}
{{- if and (eq .Values.transport "sbe") .Values.keyVault.enabled (eq .Values.sbeApiKey.keyVaultSecretName .Values.keyVault.secretName) }}
{{- fail "sbeApiKey.keyVaultSecretName is keyVault.secretName: the SBE API key and the Kafka password are two secrets" }}
{{- end }}
{{- if and .Values.azure.workloadIdentity.enabled (not .Values.azure.workloadIdentity.clientId) }}
{{- fail "azure.workloadIdentity.enabled needs azure.workloadIdentity.clientId (or set it to false)" }}
{{- end }}
{{- end }}
