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
{{- /* Replicas must sign with one key: without signing_key_files each pod
     would make its own, and a token from one pod would fail at the next. */ -}}
{{- with $cfg.token_endpoint -}}
{{- if not .signing_key_files -}}
{{- $_ := set . "signing_key_files" (list "/secrets/signing.pem") -}}
{{- end -}}
{{- end -}}
{{- /* A refresh token that rotates cannot be shared by replicas through a
     file: each would spend it, and the vendor's reuse detection revokes
     the grant. token.shared: redis keeps it in Redis, where every refresh
     runs under a lock: then replicas are fine, and the file is optional. */ -}}
{{- range $e := (default list $cfg.egress) -}}
{{- $sharedEntry := eq (toString (dig "token" "shared" "" $e)) "redis" -}}
{{- if and $sharedEntry (not (dig "url" "" (default dict $cfg.redis))) -}}
{{- fail (printf "egress %s: token.shared: redis needs tokengate.config.redis.url (the Redis server the replicas share) and redis.token_key_file (e.g. /secrets/redis-token-key, given as secret.stringData.redis-token-key: `openssl rand -base64 32`)" $e.name) -}}
{{- end -}}
{{- if eq (toString (dig "token" "grant" "" $e)) "authorization_code" -}}
{{- if and (not $sharedEntry) (gt (int $.Values.replicaCount) 1) -}}
{{- fail (printf "egress %s uses grant: authorization_code: its refresh token rotates, and %d replicas sharing it would race on every refresh (the vendor's reuse detection then revokes the grant). Set token.shared: redis on the entry (with a redis block: the replicas then refresh under a Redis lock), or replicaCount: 1 for this release, or run that egress in a separate release with replicaCount: 1." $e.name (int $.Values.replicaCount)) -}}
{{- end -}}
{{- $f := toString (dig "token" "refresh_token_file" "" $e) -}}
{{- /* /secrets/ is read-only: fit only for a vendor that never rotates (the file must then be given, see tokengate.secretState). */ -}}
{{- if and (or $f (not $sharedEntry)) (not (or (hasPrefix "/secrets/" $f) (include "tokengate.writable" (dict "path" $f "Values" $.Values)))) -}}
{{- fail (printf "egress %s: refresh_token_file %q is not on a writable volume (the container's root filesystem is read-only): `tokengate authorize` and every rotation write it there. Set persistence.enabled=true and put the file under persistence.mountPath (%s), or mount a writable volume with extraVolumes and extraVolumeMounts. (Only if the vendor never rotates refresh tokens may it be a file of the Secret, /secrets/NAME.)" $e.name $f $.Values.persistence.mountPath) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- include "tokengate.queueChecks" (dict "cfg" $cfg "Values" .Values) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* "true" if .path is on a writable volume of the tokengate container. */}}
{{- define "tokengate.writable" -}}
{{- $p := .path -}}
{{- $dirs := list -}}
{{- if .Values.persistence.enabled -}}
{{- $dirs = append $dirs .Values.persistence.mountPath -}}
{{- end -}}
{{- range .Values.extraVolumeMounts -}}
{{- if not .readOnly -}}
{{- $dirs = append $dirs .mountPath -}}
{{- end -}}
{{- end -}}
{{- range $dirs -}}
{{- if and $p (hasPrefix (printf "%s/" (trimSuffix "/" .)) $p) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* The files tokengate's config names under /secrets/ (a JSON list of
     Secret keys), found anywhere in the config. */}}
{{- define "tokengate.secretRefs" -}}
{{- $out := list -}}
{{- if kindIs "map" . -}}
{{- range $k, $v := . -}}
{{- $out = concat $out (include "tokengate.secretRefs" $v | fromJsonArray) -}}
{{- end -}}
{{- else if kindIs "slice" . -}}
{{- range . -}}
{{- $out = concat $out (include "tokengate.secretRefs" . | fromJsonArray) -}}
{{- end -}}
{{- else if and (kindIs "string" .) (hasPrefix "/secrets/" (toString .)) -}}
{{- $out = append $out (trimPrefix "/secrets/" .) -}}
{{- end -}}
{{- toJson (uniq $out) -}}
{{- end -}}

{{/*
The Secret mounted at /secrets, as JSON: "data" is what the chart's Secret
holds (secret.stringData, plus what the config needs and was not given:
the Token URL's signing keys and its clients' secrets, generated once and
then looked up in the cluster so upgrades keep them), "clients" the
generated client secrets in plain text (for the senders; never mounted).
Computed once per render: the hash in one Secret and the plain text in the
other must belong together. A file the config names that the chart can
neither find nor make fails the render: a pod that cannot start is never
rendered.
*/}}
{{- define "tokengate.secretState" -}}
{{- if not (hasKey .Values "_tokengateSecretState") -}}
{{- $cfg := include "tokengate.config" . | fromYaml -}}
{{- $refs := include "tokengate.secretRefs" $cfg | fromJsonArray -}}
{{- $state := dict "data" (dict) "clients" (dict) -}}
{{- if .Values.secret.existingSecret -}}
{{- $live := lookup "v1" "Secret" .Release.Namespace .Values.secret.existingSecret | default dict -}}
{{- if $live -}}
{{- range $refs -}}
{{- if not (hasKey (get $live "data" | default dict) .) -}}
{{- fail (printf "the config names /secrets/%s, but the Secret %s (secret.existingSecret) has no key %q" . $.Values.secret.existingSecret .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $live := get (lookup "v1" "Secret" .Release.Namespace (include "tokengate.secretName" .) | default dict) "data" | default dict -}}
{{- $liveClients := get (lookup "v1" "Secret" .Release.Namespace (include "tokengate.clientSecretsName" .) | default dict) "data" | default dict -}}
{{- $data := deepCopy (.Values.secret.stringData | default dict) -}}
{{- with $cfg.token_endpoint -}}
{{- $alg := ternary "rsa" "ecdsa" (eq (toString .algorithm) "RS256") -}}
{{- range $f := .signing_key_files -}}
{{- $k := trimPrefix "/secrets/" $f -}}
{{- if and (hasPrefix "/secrets/" $f) (not (hasKey $data $k)) -}}
{{- if hasKey $live $k -}}
{{- $_ := set $data $k (b64dec (get $live $k)) -}}
{{- else -}}
{{- $_ := set $data $k (genPrivateKey $alg) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $c := .clients -}}
{{- $hf := toString ($c.client_secret_hash_file | default "") -}}
{{- $k := trimPrefix "/secrets/" $hf -}}
{{- if and (hasPrefix "/secrets/" $hf) (not (hasKey $data $k)) -}}
{{- if hasKey $live $k -}}
{{- $_ := set $data $k (b64dec (get $live $k)) -}}
{{- if hasKey $liveClients $c.client_id -}}
{{- $_ := set $state.clients $c.client_id (b64dec (get $liveClients $c.client_id)) -}}
{{- end -}}
{{- else -}}
{{- $secret := randAlphaNum 40 -}}
{{- $_ := set $data $k (bcrypt $secret) -}}
{{- $_ := set $state.clients $c.client_id $secret -}}
{{- end -}}
{{- end -}}
{{- $sf := toString ($c.client_secret_file | default "") -}}
{{- $k := trimPrefix "/secrets/" $sf -}}
{{- if and (hasPrefix "/secrets/" $sf) (not (hasKey $data $k)) -}}
{{- if hasKey $live $k -}}
{{- $_ := set $data $k (b64dec (get $live $k)) -}}
{{- else -}}
{{- $_ := set $data $k (randAlphaNum 40) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $refs -}}
{{- if not (hasKey $data .) -}}
{{- fail (printf "the config names /secrets/%s, which the chart cannot make: set secret.stringData.%s, or secret.existingSecret to a Secret holding it (the pod would not start without it)" . .) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $state "data" $data -}}
{{- end -}}
{{- $_ := set .Values "_tokengateSecretState" (toJson $state) -}}
{{- end -}}
{{- get .Values "_tokengateSecretState" -}}
{{- end -}}

{{- define "tokengate.clientSecretsName" -}}
{{- printf "%s-client-secrets" (include "tokengate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Queued routes with the embedded file store (queue.store file://DIR,
     the default file:///var/lib/tokengate/queue): DIR must be on a
     writable volume, and one pod holds the store at a time. */}}
{{- define "tokengate.queueChecks" -}}
{{- $queued := false -}}
{{- range $r := (default list .cfg.routes) -}}
{{- if eq (toString (dig "delivery" "mode" "" $r)) "queued" -}}
{{- $queued = true -}}
{{- end -}}
{{- end -}}
{{- $store := toString (dig "queue" "store" "file:///var/lib/tokengate/queue" .cfg) -}}
{{- if and $queued (hasPrefix "file://" $store) -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- fail (printf "queued routes with the file store %s: one pod holds the store at a time, and %d replicas cannot share it. Set queue.store to a redis:// (or rediss://) URL to use redis:// for replicas, or set replicaCount: 1." $store (int .Values.replicaCount)) -}}
{{- end -}}
{{- $dir := trimPrefix "file://" $store -}}
{{- if not (include "tokengate.writable" (dict "path" (printf "%s/queue.db" (trimSuffix "/" $dir)) "Values" .Values)) -}}
{{- fail (printf "queued routes keep their messages in %s, which is not on a writable volume (the container's root filesystem is read-only), and messages there must outlive the pod. Set persistence.enabled=true (mounted at %s) and queue.store under it (default file:///var/lib/tokengate/queue), or mount a writable volume there with extraVolumes and extraVolumeMounts, or use a redis:// store." $dir .Values.persistence.mountPath) -}}
{{- end -}}
{{- end -}}
{{- end -}}
