# kubectl, for applying deploy/examples/sidecar-patch.yaml offline (kubectl patch --local) in the chart tests.
# The project's machines ship it; elsewhere Debian's kubernetes-client package provides it.
if command -v kubectl >/dev/null; then
  return 0
fi
apt_install kubernetes-client
kubectl version --client 2>/dev/null | head -1
