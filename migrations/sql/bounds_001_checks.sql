-- Bounds on input, as CHECK constraints: core/bounds.py refuses the same values first
-- with a sentence, and these make sure no other path (a psql session, a bug) stores them.
--
-- An amount, budget or price is at most 10^15 francs. A ledger counter, and any stored
-- sum of amounts, is at most 9 x 10^15: below 2^53, so JSON readers holding numbers as
-- doubles read it exactly, and far enough below BIGINT's 9.2 x 10^18 that the limit
-- CHECKs' own sums (debits_pending + debits_posted) and a statement adding thousands of
-- bounded amounts to a counter never overflow before the CHECK can refuse.

ALTER TABLE ledger_transfers
    ADD CONSTRAINT ck_ledger_transfers_amount_bounded CHECK (amount <= 1000000000000000);
ALTER TABLE ledger_accounts
    ADD CONSTRAINT ck_ledger_accounts_counters_bounded CHECK (
        debits_pending <= 9000000000000000 AND debits_posted <= 9000000000000000
        AND credits_pending <= 9000000000000000 AND credits_posted <= 9000000000000000);

ALTER TABLE agripme_seasons
    ADD CONSTRAINT ck_agripme_seasons_budget_bounded CHECK (budget <= 1000000000000000);

ALTER TABLE payout_lines
    ADD CONSTRAINT ck_payout_lines_amount_bounded CHECK (amount <= 1000000000000000);
ALTER TABLE payout_batches
    ADD CONSTRAINT ck_payout_batches_total_bounded CHECK (total <= 9000000000000000);

-- months and days stay within a century: add_months and day counts stay in the calendar
ALTER TABLE cizo_programme
    ADD CONSTRAINT ck_cizo_programme_bounded CHECK (
        monthly_subsidy_amount <= 1000000000000000 AND subsidy_months <= 1200);
ALTER TABLE cizo_plans
    ADD CONSTRAINT ck_cizo_plans_bounded CHECK (
        deposit_amount <= 1000000000000000 AND per_day_amount <= 1000000000000000
        AND term_days <= 36500
        -- the price, computed in numeric so the CHECK itself cannot overflow
        AND deposit_amount::numeric + per_day_amount::numeric * term_days
            <= 1000000000000000);
ALTER TABLE cizo_kits
    ADD CONSTRAINT ck_cizo_kits_price_bounded CHECK (price_amount <= 1000000000000000);
ALTER TABLE cizo_collections
    ADD CONSTRAINT ck_cizo_collections_amount_bounded CHECK (amount <= 1000000000000000);
ALTER TABLE cizo_payments
    ADD CONSTRAINT ck_cizo_payments_amounts_bounded CHECK (
        amount <= 1000000000000000 AND applied_amount <= 1000000000000000
        AND excess_amount <= 1000000000000000 AND subsidy_amount <= 1000000000000000);

ALTER TABLE recon_fee_rules
    ADD CONSTRAINT ck_recon_fee_rules_fee_bounded CHECK (fee_fixed <= 1000000000000000);
ALTER TABLE recon_breaks
    ADD CONSTRAINT ck_recon_breaks_amounts_bounded CHECK (
        amount <= 1000000000000000
        AND coalesce(statement_amount, 0) BETWEEN 0 AND 1000000000000000
        AND coalesce(ledger_amount, 0) BETWEEN 0 AND 1000000000000000
        AND coalesce(statement_fee, 0) BETWEEN 0 AND 1000000000000000
        AND coalesce(expected_fee, 0) BETWEEN 0 AND 1000000000000000);
-- a float mismatch is a difference of two floats, each at most a counter
ALTER TABLE recon_exceptions
    ADD CONSTRAINT ck_recon_exceptions_amounts_bounded CHECK (
        amount BETWEEN -9000000000000000 AND 9000000000000000
        AND coalesce(fee, 0) BETWEEN 0 AND 1000000000000000);
ALTER TABLE recon_runs
    ADD CONSTRAINT ck_recon_runs_floats_bounded CHECK (
        float_ledger BETWEEN -9000000000000000 AND 9000000000000000
        AND coalesce(float_provider, 0) BETWEEN 0 AND 9000000000000000);

