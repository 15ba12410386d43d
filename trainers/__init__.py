"""Preference-optimisation trainers: DPO, TDPO, SparsePO and TI-DPO for any causal LM."""
