# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which signing keys an edge trusts, and whether a release's signature lets it in.

The keys come from the caller (the inventory) or ``trust/``, never from the release: a release is
staged when a trusted key verifies the signature of its manifest, an unsigned one only when the
caller allows unsigned releases."""

from __future__ import annotations

import os

from ansible_collections.edgeinfer.deploy.plugins.module_utils._contract import (
    ContractError,
    ed25519_public_pem,
    ed25519_public_raw,
    key_id,
    verify_signature,
)
from ansible_collections.edgeinfer.deploy.plugins.module_utils._store import (
    LAST_GOOD,
    ReleaseError,
    fsync_dir,
    now_iso,
    write_bytes_atomic,
)

SIGNATURE = "manifest.json.sig"
# What a refusal of an unsigned release tells the operator to do.
SIGN_FIX = (
    "sign the build with edgeinfer_build_signing_key and add its public key (<key>.pub on GPUSRV) to "
    "edgeinfer_trusted_keys (module: trusted_keys), or, for a test inventory, set edgeinfer_allow_unsigned: true "
    "(module: allow_unsigned)"
)


def parse_trusted_keys(keys, where="trusted_keys"):
    """``{key id: canonical PEM}`` of a list of PEM public keys; a bad entry is named by its index."""
    trusted = {}
    for i, pem in enumerate(keys):
        try:
            raw = ed25519_public_raw(pem)
        except ContractError as exc:
            raise ReleaseError(f"{where}[{i}]: {exc.message}", field=f"{where}[{i}]") from None
        trusted[key_id(pem)] = ed25519_public_pem(raw)
    return trusted


def check_signature(where, blob, manifest, signature, trusted, allow_unsigned=False):
    """Whether the release whose manifest is ``blob`` may be staged. Returns ``(key_id, note)``.

    ``key_id`` names the trusted key that verified the signature; it is None when the release
    goes in unchecked, which only ``allow_unsigned`` permits (unsigned, or signed while no key
    is trusted), and ``note`` then says so. A signature that no trusted key verifies is refused
    even with ``allow_unsigned``: it comes from another build server, or the manifest changed.
    """
    ids = sorted(trusted)
    declared = manifest.meta.get("signing_key_id")
    declared = declared if isinstance(declared, str) and declared else None
    named = f"key id {declared}" if declared else "a key the manifest does not name (no signing_key_id)"
    if signature is None:
        if allow_unsigned:
            return None, f"{where} is not signed; staged unchecked because unsigned releases are allowed"
        raise ReleaseError(
            f"{where} is not signed (no {SIGNATURE}), and unsigned releases are refused: {SIGN_FIX}",
            trusted_key_ids=ids,
        )
    if not trusted:
        if allow_unsigned:
            return None, (
                f"{where} is signed with {named}, but no key is trusted here: staged unchecked because unsigned "
                f"releases are allowed, without its {SIGNATURE}"
            )
        raise ReleaseError(
            f"{where} is signed with {named}, and this edge trusts no key: add that key's public half "
            f"(<key>.pub of edgeinfer_build_signing_key on GPUSRV) to edgeinfer_trusted_keys (module: trusted_keys)",
            key_id=declared,
            trusted_key_ids=ids,
        )
    # The key the manifest names first; any trusted key that verifies the signature lets it in.
    for kid in sorted(ids, key=lambda k: k != declared):
        try:
            verify_signature(blob, signature, trusted[kid])
        except ContractError:
            continue
        except ImportError:
            raise ReleaseError("checking the signature needs the Python package cryptography on the edge") from None
        return kid, None
    if declared in trusted:
        raise ReleaseError(
            f"the signature of {where} does not verify with trusted key {declared}, the key it names: the manifest "
            "or its signature changed after signing; rebuild the release on GPUSRV",
            key_id=declared,
            trusted_key_ids=ids,
        )
    raise ReleaseError(
        f"{where} is signed with {named}, which this edge does not trust (trusted key ids: {', '.join(ids)}): "
        "add that key's public half to edgeinfer_trusted_keys, or sign the build with a trusted key "
        "(edgeinfer_build_signing_key)",
        key_id=declared,
        trusted_key_ids=ids,
    )


def staged_key(store, rid, trusted=None, allow_unsigned=True):
    """The id of the key in ``trusted`` (default: ``trust/`` now) that verifies ``store``'s staged
    release ``rid``, None for a release staged unchecked; else a ReleaseError.

    The signature was checked when the release was staged, but ``trust/`` changes with the inventory:
    a release signed by a key no longer trusted must not serve again, through a deploy, a rollback or
    a revert. A release staged unchecked keeps no signature (only allow_unsigned let it in)."""
    path = store.path_of(rid)
    manifest, blob = store.load_manifest(path)
    trusted = store.trust.read() if trusted is None else trusted
    signature = store.read_signature(path)
    where = os.path.join(path, "manifest.json")
    try:
        kid, _note = check_signature(where, blob, manifest, signature, trusted, allow_unsigned)
    except ReleaseError as exc:
        raise ReleaseError(
            f"release {rid} may not serve: {exc}; a key removed from edgeinfer_trusted_keys no longer lets its "
            "releases serve: deploy a release signed by a trusted key",
            **exc.details,
        ) from None
    return kid


def restage_problem(rid, staged_version, staged_files, version, files, checked=True):
    """Why a build (``version``, ``files`` as manifest entries) may not take over the manifest of the staged
    copy of ``rid`` (``staged_version``, ``staged_files``): ``{"msg", "files"}``, or None when it may.
    Only the same model version and files may, from a manifest a trusted key verified (``checked``).
    Preflight asks it before anything changes on the edge; staging asks it again (``found_staged``)."""

    def entry(f):
        return (str(f.get("role")), int(f.get("size") or 0), str(f.get("sha256")))

    old, new = ({str(f.get("name")): entry(f) for f in entries} for entries in (staged_files, files))
    differ = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
    if staged_version != version:
        what = f"another model version ({version}; staged: {staged_version})"
    elif differ:
        what = f"other files ({', '.join(differ)})"
    elif not checked:
        what = "the same files, unsigned"
    else:
        return None
    return {
        "msg": f"release {rid} is staged on this edge with another manifest, and this build has {what}: bump "
        "model_version for this build; to sign the staged files with another key, write their manifest again with "
        "it on GPUSRV (model_tools manifest --signing-key) and deploy that",
        "files": differ,
    }


def found_staged(store, manifest, blob, signature, kid, exclude_roles, info, check_mode=False):
    """Stage ``manifest`` (its bytes ``blob``, its signature checked with key ``kid``) when its release
    ``info["release"]`` is staged already. Returns ``(changed, info)``.

    The same manifest: the staged files are verified and nothing changes. Another manifest of the
    same content (model version and every file's name, role, size and sha256), whose signature a
    trusted key verified (it differs in what else it says, such as the key it names): the staged files
    are verified against it, and it replaces the staged manifest and signature (``resigned`` names the
    key that had signed the staged copy). So a release staged under a key no longer trusted serves
    again, under the same id, once its manifest is written again with a trusted key (model_tools
    manifest --signing-key). Anything else is refused."""
    rid = info["release"]
    path = store.path_of(rid)
    existing = store.load_manifest(path)[0]
    if existing.to_bytes() == manifest.to_bytes():
        store.verify(path, existing, exclude_roles)
        return False, info
    problem = restage_problem(
        rid,
        existing.model_version,
        [f.to_dict() for f in existing.files],
        manifest.model_version,
        [f.to_dict() for f in manifest.files],
        checked=kid is not None,
    )
    if problem:
        raise ReleaseError(problem["msg"], files=problem["files"])
    store.verify(path, manifest, exclude_roles)
    info["resigned"] = {"key_id": store.read_state()["releases"].get(rid, {}).get("key_id")}
    if check_mode:
        return True, info
    # The signature first: cut off between the two, the staged copy verifies with no key, as before.
    for name, data in ((SIGNATURE, signature), ("manifest.json", blob)):
        write_bytes_atomic(os.path.join(path, name), data, 0o444)
    fsync_dir(path)
    with store.update_state() as state:
        entry = state["releases"].setdefault(rid, {"model_version": manifest.model_version, "digest": manifest.digest})
        entry.update(signed=True, key_id=kid, resigned=now_iso())
        state["history"].append({"time": now_iso(), "action": "resign", "release": rid, "key_id": kid})
    return True, info


def provision(store, trusted_keys, check_mode=False):
    """Make ``trust/`` hold ``trusted_keys`` alone (TrustDir.write). A last good release that no key left
    trusts is then forgotten (``untrusted_last_good`` names it): a sidecar whose current release fails to
    load then serves nothing, rather than a release signed by a removed key."""
    changed, info = store.trust.write(trusted_keys, check_mode=check_mode)
    good = store.last_good()
    if not good or not store.exists(good):
        return changed, info
    try:
        staged_key(store, good, parse_trusted_keys(trusted_keys))
    except ReleaseError:
        info["untrusted_last_good"] = good
        if not check_mode:
            os.unlink(os.path.join(store.models, LAST_GOOD))
            with store.update_state() as state:
                state["last_good"] = None
                state["history"].append({"time": now_iso(), "action": "untrusted", "release": good})
    return changed, info


class TrustDir:
    """``trust/`` of an edge: the keys it trusts, one ``<key id>.pub`` each."""

    def __init__(self, path):
        self.path = path

    def files(self):
        """The ``*.pub`` names under ``trust/``, without the suffix (key ids, when this module wrote them)."""
        try:
            return sorted(n[: -len(".pub")] for n in os.listdir(self.path) if n.endswith(".pub"))
        except FileNotFoundError:
            return []

    def read(self):
        """``{key id: PEM}`` of the keys provisioned under ``trust/`` (empty when there is none)."""
        trusted = {}
        for name in (f"{stem}.pub" for stem in self.files()):
            path = os.path.join(self.path, name)
            with open(path, "rb") as fh:
                pem = fh.read()
            try:
                trusted[key_id(pem)] = ed25519_public_pem(ed25519_public_raw(pem))
            except ContractError as exc:
                raise ReleaseError(
                    f"{path}: {exc.message}; remove it, or provision the keys again (action=trust)"
                ) from None
        return trusted

    def write(self, keys, check_mode=False):
        """Make ``trust/`` hold these keys and no others, as ``<key id>.pub`` (0644, directory 0755).

        Returns ``(changed, info)``: the trusted key ids, and the ids written and removed.
        """
        wanted = parse_trusted_keys(keys)
        present = set(self.files())
        try:
            dir_ok = os.stat(self.path).st_mode & 0o7777 == 0o755
        except FileNotFoundError:
            dir_ok = False
        written = []
        for kid, pem in sorted(wanted.items()):
            path = os.path.join(self.path, f"{kid}.pub")
            try:
                with open(path, "rb") as fh:
                    same = fh.read() == pem and os.stat(path).st_mode & 0o7777 == 0o644
            except FileNotFoundError:
                same = False
            if not same:
                written.append(kid)
        removed = sorted(present - set(wanted))
        info = {"trusted_key_ids": sorted(wanted), "written": written, "removed": removed}
        changed = bool(written or removed or not dir_ok)
        if not changed or check_mode:
            return changed, info
        os.makedirs(self.path, mode=0o755, exist_ok=True)
        os.chmod(self.path, 0o755)
        for kid in written:
            write_bytes_atomic(os.path.join(self.path, f"{kid}.pub"), wanted[kid], 0o644)
        for kid in removed:
            os.unlink(os.path.join(self.path, f"{kid}.pub"))
        fsync_dir(self.path)
        return True, info
