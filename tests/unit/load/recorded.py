"""What the Docker Engine API answered on a machine running the deploy's compose sidecar, for the
resource tests of the load engine and of edgeinfer-validate."""

# GET /containers/json, trimmed to what is read: the sidecar publishes 127.0.0.1:9000.
SIDECAR = {
    "Id": "4475a267097dd6b3282b41d5f9a98f4bf04fd5b587d04091746e7ade023485bc",
    "Names": ["/edgeinfer-local-sidecar"],
    "Ports": [{"IP": "127.0.0.1", "PrivatePort": 9000, "PublicPort": 9000, "Type": "tcp"}],
    "Labels": {"com.docker.compose.project": "edgeinfer-local", "com.docker.compose.service": "edgeinfer-sidecar"},
    "State": "running",
    "HostConfig": {"NetworkMode": "edgeinfer-local_default"},
}
