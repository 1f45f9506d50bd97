"""ocrviz.analysis: questions asked of captured activations.

Pure functions over numpy/torch arrays; widgets and notebooks call these,
never the other way round.  Counterfactuals (issue 10): ``rerun_head``,
``region_influence``, ``attention_report``, ``error_blame``, ``context_flow``.
"""
from __future__ import annotations

from .aspp_taps import Branch, Tap, aspp_branch_shares, aspp_taps
from .blame import CATEGORIES, ErrorBlame, error_blame
from .counterfactual import rerun_head
from .flow import ContextFlow, context_flow
from .influence import region_influence
from .report import AttentionReport, attention_report

__all__ = ["Branch", "Tap", "aspp_branch_shares", "aspp_taps", "rerun_head", "region_influence",
           "AttentionReport", "attention_report",
           "CATEGORIES", "ErrorBlame", "error_blame", "ContextFlow", "context_flow"]
