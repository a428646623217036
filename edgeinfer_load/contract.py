# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the load engine takes from the release format: the tensor layout, the golden set, cosine,
and the published normalization constants (for plausible raw windows).

This package runs under two names. Standalone it is ``edgeinfer_load`` and the contract is the
``edgeinfer_contract`` package beside it. In the collection it is
``plugins/module_utils/_load`` (a link per file, as ``_contract`` is), and Ansible ships only
module_utils to an edge, so there the contract is the sibling ``.._contract``. A relative import
past the top-level package raises ImportError, which is how this module tells the two apart.
"""

from __future__ import annotations

try:
    from .._contract import CHANNELS, GUIDE_NORMALIZATION, LATENT_DIM, WINDOW, ContractError, GoldenSet, cosine
except ImportError:
    from edgeinfer_contract import CHANNELS, GUIDE_NORMALIZATION, LATENT_DIM, WINDOW, ContractError, GoldenSet, cosine

__all__ = ["CHANNELS", "GUIDE_NORMALIZATION", "LATENT_DIM", "WINDOW", "ContractError", "GoldenSet", "cosine"]
