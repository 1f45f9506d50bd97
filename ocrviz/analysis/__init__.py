"""ocrviz.analysis: questions asked of captured activations.

Pure functions over numpy/torch arrays; widgets and notebooks call these,
never the other way round.
"""
from __future__ import annotations

from .aspp_taps import Branch, Tap, aspp_branch_shares, aspp_taps

__all__ = ["Branch", "Tap", "aspp_branch_shares", "aspp_taps"]
