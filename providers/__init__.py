"""Mobile-money operators: the provider contract, the Flooz and T-Money adapters, routing,
callbacks and statements, and the operator sandbox. Never touches the ledger.
"""
