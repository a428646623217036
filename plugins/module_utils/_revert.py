# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put a staged release back on an edge: the one revert, for rollback.yml (edgeinfer_revert) and
the dead-man alike.

``current`` is switched back; the compose env the release served with is restored
(``compose/env/<release>.env``); its image comes back by the id it was committed on (re-tagged
when its tag names another image by now); compose recreates the sidecar when its configuration
changed, it runs another image, or it does not run; else (or when compose kept the container) a
hot reload makes it load the release; then ``/healthz`` must name the release's model.
Standard library only: it runs on the edge's own Python.
"""

from __future__ import annotations

import os

from ansible_collections.edgeinfer.deploy.plugins.module_utils._compose import ComposeFiles, env_keys, needs_compose
from ansible_collections.edgeinfer.deploy.plugins.module_utils._probe import hot_reload, wait_healthy
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import ReleaseError
from ansible_collections.edgeinfer.deploy.plugins.module_utils._trust import staged_key

FORMAT_ID = "{{.Id}}"


def _container(run, name):
    """(running, image id, container id) of the sidecar container, or (False, None, None)."""
    rc, out, dummy = run(["docker", "inspect", "--format", "{{.State.Running}} {{.Image}} {{.Id}}", name])
    fields = out.split()
    if rc != 0 or len(fields) != 3:
        return False, None, None
    return fields[0] == "true", fields[1], fields[2]


def _restore_image(run, image, image_id, check_mode):
    """Make ``image`` (a tag) name ``image_id`` again. Returns 'missing', 'retagged' or 'kept'."""
    if run(["docker", "image", "inspect", "--format", FORMAT_ID, image_id])[0] != 0:
        return "missing"
    rc, out, dummy = run(["docker", "image", "inspect", "--format", FORMAT_ID, image])
    if rc == 0 and out.strip() == image_id:
        return "kept"
    if not check_mode:
        rc, dummy, err = run(["docker", "tag", image_id, image])
        if rc != 0:
            raise ReleaseError(f"docker tag {image_id} {image} failed: {err.strip()}")
    return "retagged"


def _switch_back(store, release, compose_dir, previous, reason, check_mode):
    """Restore the env the release served with, then switch ``current`` to it.

    Returns the compose write, whether ``current`` moved, and the revert's result so far.
    """
    staged_key(store, release)  # before anything is written: a refused revert changes nothing
    files = ComposeFiles(compose_dir).write(release, token=False, check_mode=check_mode)
    switched, before, dummy = store.switch(release, reason=reason, previous=previous, check_mode=check_mode)
    out = {"before": before, "actions": [], "applied": "none", "image": None, "reload": None, "health": None}
    if switched:
        out["actions"].append(f"current -> {release}")
    if files["env_changed"]:
        out["actions"].append(f"compose env <- env/{release}.env")
    return files, switched, out


def _sidecar_names(env, url, compose_project, container):
    """The sidecar's URL, compose project and container name: as given, else as the restored env says."""
    url = url or f"http://127.0.0.1:{env.get('EDGEINFER_PORT', '9000')}"
    compose_project = compose_project or env.get("COMPOSE_PROJECT_NAME", "edgeinfer")
    container = container or env.get("EDGEINFER_CONTAINER_NAME", f"{compose_project}-sidecar")
    return url, compose_project, container


def _bring_back_image(run, known, check_mode, out):
    """Make the image tag the release was committed on name its image id again, when both were recorded."""
    if known.get("image") and known.get("image_id"):
        out["image"] = _restore_image(run, known["image"], known["image_id"], check_mode)
        if out["image"] == "retagged":
            out["actions"].append(f"{known['image']} -> {known['image_id']}")


def _compose_up(run, compose_dir, compose_project, timeout, out):
    """Recreate the sidecar with compose; False, with the health saying why, when compose fails."""
    cmd = ["docker", "compose", "--project-directory", compose_dir, "-p", compose_project]
    rc, dummy, err = run([*cmd, "up", "-d", "--wait", "--wait-timeout", str(int(timeout))])
    out["compose"] = {"rc": rc, "stderr": err[-2000:]}
    if rc != 0:
        out["health"] = {"ok": False, "reason": f"docker compose up failed: {err.strip()[-500:]}"}
        return False
    out["applied"] = "restart"
    out["actions"].append("compose up")
    return True


def _reload(url, compose_dir, timeout, out):
    """Ask the running sidecar to load ``current`` (hot reload, with the token compose_dir holds)."""
    ok, status, body = hot_reload(url, os.path.join(compose_dir, "admin_token"), timeout)
    out["reload"] = {"ok": ok, "status": status, "body": body}
    if ok and out["applied"] == "none":
        out["applied"] = "reload"


def expected_model(store, release, known):
    """The version and digest /healthz must name for ``release``: state.json's record, else its manifest.

    Without either the health check would accept any model; state.json can lack the release (it was
    removed to start over, or a crash came between staging and its record)."""
    if known.get("model_version") and known.get("digest"):
        return {"model_version": known["model_version"], "digest": known["digest"]}
    manifest = store.load_manifest(store.path_of(release))[0]
    return {"model_version": manifest.model_version, "digest": manifest.digest}


def _health(url, timeout, expect):
    """Whether /healthz names the release's model (``expected_model``)."""
    ok, why, _body, waited = wait_healthy(
        url, timeout, expect_version=expect["model_version"], expect_sha256=expect["digest"]
    )
    return {"ok": ok, "reason": why, "duration": waited}


def revert(
    run,
    store,
    release,
    url=None,
    compose_dir=None,
    compose_project=None,
    container=None,
    previous=None,
    reason="revert",
    timeout=90.0,
    check_mode=False,
):
    """Serve ``release`` again on this edge (see the module docstring); ``run(argv) -> (rc, out, err)``.

    ``url``, ``compose_project`` and ``container`` default to what the restored env says
    (EDGEINFER_PORT on 127.0.0.1, COMPOSE_PROJECT_NAME, EDGEINFER_CONTAINER_NAME).
    Returns what it did: ``changed``, ``actions``, ``before``, ``applied`` (restart, reload or
    none), ``image`` (kept, retagged, missing or null), ``reload`` and ``health``.
    """
    if not store.exists(release):
        raise ReleaseError(
            f"release {release} is not staged under {store.releases}; available: {store.list_releases()}"
        )
    compose_dir = compose_dir or os.path.join(store.root, "compose")
    known = store.read_state().get("releases", {}).get(release, {})
    expect = expected_model(store, release, known)
    files, switched, out = _switch_back(store, release, compose_dir, previous, reason, check_mode)
    env = env_keys(files["diff"]["after"])
    url, compose_project, container = _sidecar_names(env, url, compose_project, container)
    out["expected"] = expect
    running, running_image, container_id = _container(run, container)
    _bring_back_image(run, known, check_mode, out)
    wrong_image = out["image"] in ("kept", "retagged") and running_image != known.get("image_id")
    restart = not running or wrong_image or needs_compose(files)
    # current names the release already (an earlier revert switched it) but the running sidecar serves
    # another model: that revert's reload failed, so this one asks again instead of only waiting. A read,
    # made in check mode too, so that check mode predicts the reload.
    stale = not switched and not restart and not _health(url, 0, expect)["ok"]
    out["changed"] = bool(switched or files["changed"] or out["image"] == "retagged" or restart or stale)
    if check_mode:
        out["applied"] = "restart" if restart else ("reload" if switched or stale else "none")
        return out
    if restart:
        if not _compose_up(run, compose_dir, compose_project, timeout, out):
            return out
        # Compose keeps a container whose configuration did not change: it must still load the release.
        switched = switched and _container(run, container)[2] == container_id
    if switched or stale:
        _reload(url, compose_dir, timeout, out)
    out["health"] = _health(url, timeout, expect)
    return out
