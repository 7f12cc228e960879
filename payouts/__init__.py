"""Payout batches: building, maker-checker approval, dispatch through the operators, settlement."""
