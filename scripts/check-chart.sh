#!/usr/bin/env bash
# Checks the Helm chart and deploy/ (what .ci/run calls):
#   - helm lint --strict, default values and charts/weir/ci/full-values.yaml;
#   - helm template output validated by kubernetes-validate (strict: unknown fields fail)
#     against Kubernetes 1.28 (the chart's minimum) and 1.33, for both values files;
#   - values the schema or the chart must refuse are refused;
#   - deploy/ matches the chart (scripts/render-deploy.sh --check) and validates;
#   - deploy/sample-endpoint.yaml validates against the CRD, when crds/ has it.
# Installs helm into ./.tools/bin and kubernetes-validate into ./.tools/venv (both ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=install-helm.sh
source scripts/install-helm.sh
VENV=.tools/venv
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi
KV="$VENV/bin/kubernetes-validate"

CHART=charts/weir
FULL=$CHART/ci/full-values.yaml

# kubernetes-validate only warns about kinds it has no schema for. The one such kind the
# chart renders on purpose is the Prometheus Operator's ServiceMonitor; any other warning
# (or error) fails.
validate() { # validate K8S_VERSION FILE...
  local version=$1 out
  shift
  if ! out=$("$KV" --strict --quiet -k "$version" "$@" 2>&1); then
    echo "$out" >&2
    return 1
  fi
  out=$(echo "$out" | grep -v -e '^$' -e "Couldn't find schema for kind ServiceMonitor with api version monitoring.coreos.com/v1" || true)
  if [ -n "$out" ]; then
    echo "$out" >&2
    return 1
  fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for values in default "$FULL"; do
  args=()
  [ "$values" = default ] || args=(-f "$values")
  echo "-- helm lint --strict ($values)"
  helm lint --strict "$CHART" "${args[@]}"
  for k8s in 1.28.0 1.33.0; do
    echo "-- helm template ($values, Kubernetes $k8s) | kubernetes-validate --strict -k $k8s"
    helm template weir "$CHART" --namespace weir --include-crds --kube-version "$k8s" "${args[@]}" \
      >"$tmp/rendered.yaml"
    validate "$k8s" "$tmp/rendered.yaml"
  done
done

echo "-- values the chart must refuse"
refuse() { # refuse MESSAGE-FRAGMENT HELM-ARGS...
  local want=$1 out
  shift
  if out=$(helm template weir "$CHART" "$@" 2>&1 >/dev/null); then
    echo "helm template $* rendered; it must fail" >&2
    return 1
  fi
  if ! grep -q -- "$want" <<<"$out"; then
    echo "helm template $* failed without saying '$want':" >&2
    echo "$out" >&2
    return 1
  fi
}
refuse "additional properties 'timout' not allowed" --set config.timout=2s
refuse "got number, want string" --set config.timeout=2
refuse "value must be one of" --set config.outputEncoding=jsn
refuse "minimum: got 80" --set config.port=80
refuse "must differ from config.port" --set config.adminPort=8080
refuse "terminationGracePeriodSeconds (30) must exceed" --set shutdown.drainSeconds=30
refuse "value must be one of" --set tls.secretName=weir-tls --set-string tls.minVersion=1.1
refuse "need tls.secretName" --set tls.plainPort=8081
refuse "needs tls.plainPort" --set tls.secretName=weir-tls --set tls.redirectHttp=true
refuse "must differ from config.port" --set tls.secretName=weir-tls --set tls.plainPort=8080
refuse "names config.port (8080)" --set tls.secretName=weir-tls --set tls.plainPort=8081 \
  --set tls.redirectHttp=true
refuse "service.port and service.httpsPort must differ" --set tls.secretName=weir-tls \
  --set tls.plainPort=8081 --set service.httpsPort=80

echo "-- TLS with the redirect (service.httpsPort = config.port) renders and validates"
helm template weir "$CHART" --namespace weir --kube-version 1.28.0 --set tls.secretName=weir-tls \
  --set tls.plainPort=8081 --set tls.redirectHttp=true --set service.httpsPort=8080 >"$tmp/redirect.yaml"
validate 1.28.0 "$tmp/redirect.yaml"
grep -q 'redirectHttp: true' "$tmp/redirect.yaml"

echo "-- deploy/ matches the chart"
scripts/render-deploy.sh --check
# The generated files suit the chart's minimum, 1.28; the sample needs the CRD.
for k8s in 1.28.0 1.33.0; do
  echo "-- deploy/ | kubernetes-validate --strict -k $k8s"
  validate "$k8s" deploy/[0-9][0-9]-*.yaml
done
CRD=crds/endpoints.weir.dev.yaml
CRDCHECK=tests/support/crdcheck.py
[ -f "$CRDCHECK" ] || CRDCHECK=../shared/tools/crdcheck.py
if [ -f "$CRD" ] && [ -f "$CRDCHECK" ]; then
  echo "-- deploy/sample-endpoint.yaml against $CRD"
  out=$("$VENV/bin/python" "$CRDCHECK" "$CRD" deploy/sample-endpoint.yaml) || { echo "$out" >&2; exit 1; }
  echo "$out"
  # crdcheck skips objects whose apiVersion/kind the CRD does not define: insist on a match.
  grep -q '^OK deploy/sample-endpoint.yaml Endpoint/hello' <<<"$out"
else
  echo "-- skipped: deploy/sample-endpoint.yaml against the CRD ($CRD or $CRDCHECK missing)"
fi
echo "chart checks passed"
