# CIZO in the demo: solar kits paid by mobile money with the chèque solaire, unlocked by
# OpenPAYGO tokens, and the solar company settled through maker-checker.
# Sourced by scripts/demo.sh once the sandbox runs and SIKA_HOME, SIKA_SANDBOX_URL and the
# agents awa (maker), kodjo (approver) and root (admin) exist with both floats funded;
# `as NAME` (demo.sh) runs a command with that person's own keys, as every act is a
# request signed by the person acting. The chèque solaire is the treasurer's: she is
# enrolled here unless the demo already has her.
# Company and plan are created once; kits get serials of their own on every run.

cizo_step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# Sika's info logs (every operator call) would bury the story: warnings only, unless asked
cizo_run() { printf '$ %s\n' "$*"; SIKA_LOG_LEVEL="${CIZO_LOG_LEVEL:-WARNING}" "$@"; }
cizo_json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
cizo_wallet() {
    curl -sf -X POST "$SIKA_SANDBOX_URL/_sandbox/wallets" -H 'Content-Type: application/json' \
        -d "{\"msisdn\": \"$1\", \"balance\": $2}" >/dev/null
}

CIZO_RUN="$(date -u +%H%M%S)"
CIZO_KEY="0123456789abcdef0123456789abcdef"
CIZO_YEAR="$(date -u +%Y)"
CIZO_TREASURER="${CIZO_TREASURER:-afi}"

if ! as root sika agent list --json | python3 -c "
import json, sys
sys.exit(0 if any(a['name'] == '$CIZO_TREASURER' for a in json.load(sys.stdin)) else 1)"; then
    cizo_step "The treasurer makes her key on her own laptop; root enrols her."
    as "$CIZO_TREASURER" sika agent keygen "$CIZO_TREASURER" \
        >"$SIKA_HOME/$CIZO_TREASURER.pub" 2>/dev/null
    cizo_run as root sika agent add "$CIZO_TREASURER" --role treasurer \
        --public-key "$SIKA_HOME/$CIZO_TREASURER.pub"
fi

cizo_step "CIZO: BBOXX sells solar kits at its 2018 prices: 8 960 FCFA installation, then 160 a day for three years."
# the plan exists only once the company and this demo's subsidy allocation do
if ! sika cizo plan show BBOXX-S >/dev/null 2>&1; then
    sika cizo company show BBOXX >/dev/null 2>&1 ||
        cizo_run as awa sika cizo company add BBOXX --name "BBOXX Togo" --msisdn 96000041 \
            --agent awa
    cizo_run as awa sika cizo plan add BBOXX-S --company BBOXX --deposit 8960 --per-day 160 \
        --term-days 1095 --agent awa
    cizo_run as "$CIZO_TREASURER" sika cizo subsidy fund --year "$CIZO_YEAR" --amount 5000000 \
        --operator flooz --reference "demo-$CIZO_YEAR" --agent "$CIZO_TREASURER"
else
    echo "(company BBOXX, plan BBOXX-S and the $CIZO_YEAR chèque solaire are already set up)"
fi

cizo_step "Three kits sold to households (OpenPAYGO keys are encrypted at rest)."
cizo_wallet 96000031 500000
cizo_wallet 96000032 500000
cizo_wallet 96000033 500000
for n in 1 2 3; do
    cizo_run as awa sika cizo kit register --household "Foyer $n" --msisdn "9600003$n" \
        --company BBOXX --plan BBOXX-S --serial "BX-$CIZO_RUN-$n" --opaygo-key "$CIZO_KEY" \
        --starting-code "98765432$n" --agent awa >/dev/null
done
echo "registered BX-$CIZO_RUN-1, BX-$CIZO_RUN-2, BX-$CIZO_RUN-3"

cizo_step "Kit 1: a USSD push for the installation and 10 days; the chèque solaire adds 1 600 FCFA, so 20 days."
cizo_run as awa sika cizo collect "BX-$CIZO_RUN-1" --amount 10560 --agent awa >/dev/null
cizo_run sika cizo kit show "BX-$CIZO_RUN-1"

cizo_step "Kit 2: the household pays the whole plan at once: the kit is unlocked for good (DISABLE_PAYG)."
cizo_run as awa sika cizo collect "BX-$CIZO_RUN-2" --amount 184160 --agent awa >/dev/null
cizo_run sika cizo kit show "BX-$CIZO_RUN-2"

cizo_step "Kit 3: the household pays its serial on its own (installation and one day); the statement confirms it."
cizo_run curl -s -X POST "$SIKA_SANDBOX_URL/_sandbox/pay" -H 'Content-Type: application/json' \
    -d "{\"msisdn\": \"96000033\", \"amount\": 9120, \"merchant_reference\": \"BX-$CIZO_RUN-3\", \"operator\": \"flooz\"}" >/dev/null
echo
CIZO_DAY="$(curl -sf "$SIKA_SANDBOX_URL/_sandbox/clock" | cizo_json '["now"][:10]')"
CIZO_STATEMENT="$SIKA_HOME/flooz-$CIZO_DAY.csv"
curl -sf "$SIKA_SANDBOX_URL/_sandbox/statements/flooz/$CIZO_DAY" -o "$CIZO_STATEMENT"
cizo_run as awa sika cizo payments confirm --provider flooz --statement "$CIZO_STATEMENT" \
    --agent awa

cizo_step "Kits in arrears and kits about to lock."
cizo_run sika cizo report

cizo_step "Settle BBOXX: awa makes the batch, kodjo approves it, the payout goes through Flooz."
CIZO_BATCH="$(SIKA_LOG_LEVEL=WARNING as awa sika cizo settle --company BBOXX --agent awa --json |
    cizo_json '["batch_id"]')"
echo "settlement batch $CIZO_BATCH"
cizo_run as kodjo sika cizo batch approve "$CIZO_BATCH" --agent kodjo >/dev/null
cizo_run as kodjo sika cizo batch dispatch "$CIZO_BATCH" --agent kodjo --wait --timeout 60
cizo_run sika ledger verify
