"""CIZO: pay-as-you-go solar kits, household collections, the chèque solaire and tokens."""
