"""dsar: bulk data subject requests for the Adobe Experience Platform Privacy Service.

Library first: everything the ``dsar`` command does is reachable from here.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
