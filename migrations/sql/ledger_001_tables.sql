-- Ledger tables (docs/architecture.md#ledger). Amounts are BIGINT francs, always
-- positive; direction is carried by the debit and credit accounts. Mirrored by
-- ledger/models.py.

CREATE TABLE ledger_accounts (
    id bigint GENERATED ALWAYS AS IDENTITY,
    code text NOT NULL,
    kind text NOT NULL,
    limit_on text,
    debits_pending bigint NOT NULL DEFAULT 0,
    debits_posted bigint NOT NULL DEFAULT 0,
    credits_pending bigint NOT NULL DEFAULT 0,
    credits_posted bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_ledger_accounts PRIMARY KEY (id),
    CONSTRAINT uq_ledger_accounts_code UNIQUE (code),
    CONSTRAINT ck_ledger_accounts_code_format CHECK (code ~ '^[a-z0-9][a-z0-9_.:@-]{0,99}$'),
    CONSTRAINT ck_ledger_accounts_kind CHECK (
        kind IN ('asset', 'liability', 'equity', 'income', 'expense')),
    CONSTRAINT ck_ledger_accounts_limit_on CHECK (limit_on IN ('debits', 'credits')),
    CONSTRAINT ck_ledger_accounts_counters_non_negative CHECK (
        debits_pending >= 0 AND debits_posted >= 0
        AND credits_pending >= 0 AND credits_posted >= 0),
    -- TigerBeetle's debits_must_not_exceed_credits: pending debits count.
    CONSTRAINT ck_ledger_accounts_debits_within_credits CHECK (
        limit_on IS DISTINCT FROM 'debits' OR debits_pending + debits_posted <= credits_posted),
    CONSTRAINT ck_ledger_accounts_credits_within_debits CHECK (
        limit_on IS DISTINCT FROM 'credits' OR credits_pending + credits_posted <= debits_posted)
);

-- One row per transfer, never updated: a pending transfer is resolved by a second row
-- (kind post, void or expire) that names it in pending_id.
CREATE TABLE ledger_transfers (
    id text NOT NULL,
    debit_account_id bigint NOT NULL,
    credit_account_id bigint NOT NULL,
    amount bigint NOT NULL,
    kind text NOT NULL,
    pending_id text,
    timeout integer NOT NULL DEFAULT 0,
    expires_at timestamptz,
    code integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_ledger_transfers PRIMARY KEY (id),
    CONSTRAINT fk_ledger_transfers_debit_account_id_ledger_accounts
        FOREIGN KEY (debit_account_id) REFERENCES ledger_accounts (id),
    CONSTRAINT fk_ledger_transfers_credit_account_id_ledger_accounts
        FOREIGN KEY (credit_account_id) REFERENCES ledger_accounts (id),
    CONSTRAINT fk_ledger_transfers_pending_id_ledger_transfers
        FOREIGN KEY (pending_id) REFERENCES ledger_transfers (id),
    CONSTRAINT ck_ledger_transfers_id_format CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$'),
    CONSTRAINT ck_ledger_transfers_amount_positive CHECK (amount > 0),
    CONSTRAINT ck_ledger_transfers_kind CHECK (
        kind IN ('single', 'pending', 'post', 'void', 'expire')),
    CONSTRAINT ck_ledger_transfers_accounts_different CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT ck_ledger_transfers_pending_id_iff_resolution CHECK (
        (kind IN ('post', 'void', 'expire')) = (pending_id IS NOT NULL)),
    CONSTRAINT ck_ledger_transfers_timeout CHECK (
        timeout >= 0 AND (timeout = 0 OR kind = 'pending')),
    CONSTRAINT ck_ledger_transfers_expires_at CHECK (
        (timeout = 0 AND expires_at IS NULL)
        OR (timeout > 0 AND expires_at = created_at + make_interval(secs => timeout))),
    CONSTRAINT ck_ledger_transfers_code CHECK (code BETWEEN 0 AND 65535)
);

-- At most one resolution (post, void or expire) per pending transfer.
CREATE UNIQUE INDEX ix_ledger_transfers_pending_id
    ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX ix_ledger_transfers_debit_account_id ON ledger_transfers (debit_account_id);
CREATE INDEX ix_ledger_transfers_credit_account_id ON ledger_transfers (credit_account_id);
-- Rows arrive in time order, so BRIN finds a day's rows for seals at almost no insert cost.
CREATE INDEX ix_ledger_transfers_created_at ON ledger_transfers USING brin (created_at);
CREATE INDEX ix_ledger_transfers_expires_at
    ON ledger_transfers (expires_at) WHERE expires_at IS NOT NULL;

-- One signed link of the hash chain per sealed day.
CREATE TABLE ledger_seals (
    day date NOT NULL,
    transfers bigint NOT NULL,
    rows_hash text NOT NULL,
    hash text NOT NULL,
    previous text,
    signature text NOT NULL,
    key_fingerprint text NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_ledger_seals PRIMARY KEY (day),
    CONSTRAINT ck_ledger_seals_transfers_non_negative CHECK (transfers >= 0)
);
