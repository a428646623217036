# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find an edge among the peers of ``tailscale status --json`` and say whether it can be reached."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: tailscale_peer
short_description: An edge's peer entry in C(tailscale status --json), and why it cannot be reached
version_added: 0.2.0
description:
  - Looks the edge up among the C(Peer) entries of the controller's C(tailscale status --json) by MagicDNS name
    (C(DNSName), with or without the tailnet suffix), C(HostName), or Tailscale IP.
  - Returns the peer's figures and C(problem), a sentence naming the edge and the fix when the controller's
    Tailscale is not running, the edge is not a peer of the tailnet, or the peer is offline; C(problem) is
    null when the edge is an online peer.
author:
  - EdgeInfer deploy team (@edgeinfer)
positional: names
options:
  _input:
    description: The parsed JSON of C(tailscale status --json), run on the controller.
    type: dict
    required: true
  names:
    description: The names the edge goes by (its inventory name, C(ansible_host)); the first that matches wins.
    type: list
    elements: str
    required: true
  edge:
    description: The edge's name in messages (default the first of O(names)).
    type: str
"""

EXAMPLES = r"""
- name: Refuse an edge whose Tailscale peer is offline
  ansible.builtin.assert:
    that: peer.problem is none
    fail_msg: "{{ peer.problem }}"
  vars:
    peer: "{{ status.stdout | from_json | edgeinfer.deploy.tailscale_peer([ansible_host], edge=inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The edge's peer entry.
  type: dict
  contains:
    found:
      description: Whether a peer of the tailnet matched one of the names.
      type: bool
    online:
      description: The peer's C(Online).
      type: bool
    host_name:
      description: The peer's C(HostName).
      type: str
    dns_name:
      description: The peer's MagicDNS name, without the trailing dot.
      type: str
    ips:
      description: The peer's Tailscale IPs.
      type: list
      elements: str
    last_seen:
      description: The peer's C(LastSeen), when the control plane last saw it.
      type: str
    problem:
      description: Why the edge cannot be reached over Tailscale, or null.
      type: str
"""


def _matches(peer, name):
    dns = str(peer.get("DNSName") or "").rstrip(".").lower()
    return (
        name == dns
        or (dns and dns.split(".", 1)[0] == name)
        or name == str(peer.get("HostName") or "").lower()
        or name in [str(ip).lower() for ip in peer.get("TailscaleIPs") or []]
    )


def tailscale_peer(status, names, edge=None):
    if not isinstance(status, dict):
        # A plain TypeError: Ansible reports it with the template that failed.
        raise TypeError(
            f"tailscale_peer: expected the parsed JSON of `tailscale status --json`, got {type(status).__name__}"
        )
    wanted = [str(n).strip().rstrip(".").lower() for n in names if n]
    label = edge or (wanted[0] if wanted else "?")
    out = {"found": False, "online": False, "host_name": None, "dns_name": None, "ips": [], "last_seen": None}
    state = status.get("BackendState")
    if state is not None and state != "Running":
        out["problem"] = (
            f"{label}: Tailscale on the controller is {state}, not Running: run `tailscale up` on the controller "
            "(or set edgeinfer_tailscale=false for edges not reached over Tailscale)"
        )
        return out
    for name in wanted:
        for peer in (status.get("Peer") or {}).values():
            if isinstance(peer, dict) and _matches(peer, name):
                out.update(
                    found=True,
                    online=bool(peer.get("Online")),
                    host_name=peer.get("HostName"),
                    dns_name=str(peer.get("DNSName") or "").rstrip(".") or None,
                    ips=list(peer.get("TailscaleIPs") or []),
                    last_seen=peer.get("LastSeen"),
                )
                out["problem"] = (
                    None
                    if out["online"]
                    else f"{label}: its Tailscale peer {out['dns_name'] or out['host_name']} is offline "
                    f"(last seen {out['last_seen'] or 'never'}): power it on or bring its tailscaled up, "
                    "or leave it out with --limit"
                )
                return out
    out["problem"] = (
        f"{label}: not a peer of the controller's tailnet (looked for {', '.join(wanted)} among "
        f"{len(status.get('Peer') or {})} peers' DNSName, HostName and TailscaleIPs): add the edge to the tailnet, "
        "or set edgeinfer_tailscale_peer to its MagicDNS name"
    )
    return out


class FilterModule:
    def filters(self):
        return {"tailscale_peer": tailscale_peer}
