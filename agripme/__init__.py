"""AgriPME: the farmer registry, season rules, payout batches and their dispatch."""
