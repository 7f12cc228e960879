"""The recorded operator answers Sika must understand, and where each shape was seen.

One row per fixture file under `fixtures/`: the public client code that shows the shape
(repository and path inside it), the operator operation, the Sika call that meets it, and
the outcome Sika must draw from it, with the ids it must record. Values are adapted to
Togolese numbers and Sika's references; element names, nesting, wrappers, namespaces and
value types are the clients' own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from providers.base import AccountStatus, Outcome, Reason

FIXTURES = Path(__file__).parent / "fixtures"

# Sika's side of every exchange in the fixtures.
FLOOZ_PAYOUT_REF = "AGR-2026A-000001"
FLOOZ_PAYEE = "22896000001"
FLOOZ_COLLECTION_REF = "CIZO-2026-000042"
FLOOZ_PAYER = "22899112233"
FLOOZ_MERCHANT = "22899000000"
TMONEY_PAYOUT_REF = "AGR-2026A-000002"
TMONEY_PAYEE = "22890000001"
TMONEY_COLLECTION_REF = "CIZO-2026-000043"
TMONEY_PAYER = "22891234567"

# The operators' own ids in the fixtures (Moov's 0/7/9 + yyyymmdd + counter format).
MOOV_TRANSFER_ID = "920261123000001"
MOOV_CASHIN_STYLE_ID = "020261123000017"
MOOV_PUSH_ID = "720261123000006"
TMONEY_CREDIT_REF = "T#2611230001"
TMONEY_DEBIT_REF = "T#2611230002"

XML = "text/xml; charset=utf-8"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class Operator(StrEnum):
    """Whose answer a fixture is."""

    FLOOZ = "flooz"
    TMONEY = "tmoney"


class Call(StrEnum):
    """The adapter method that meets a shape."""

    PAYOUT = "payout"
    PAYOUT_STATUS = "payout_status"
    COLLECTION_STATUS = "collection_status"
    TRANSACTION_STATUS = "transaction_status"
    REQUEST_COLLECTION = "request_collection"
    BALANCE = "balance"
    LOOKUP = "lookup"
    CALLBACK = "parse_callback"
    SIGN_IN = "sign_in"


@dataclass(frozen=True)
class Shape:
    """One recorded answer and what Sika must make of it.

    `records` names attributes of the adapter's result (`TransactionResult`,
    `BalanceResult`, `KycResult`, `CallbackEvent`; `token` for a sign-in: the bearer token
    Sika then sends) and the value each must hold. `reason` None means "any reason".
    """

    id: str
    operator: Operator
    file: str
    repo: str
    path: str
    operation: str
    call: Call
    outcome: Outcome
    reason: Reason | None = None
    records: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    http_status: int = 200
    content_type: str = XML
    note: str = ""

    @property
    def fixture(self) -> Path:
        """The fixture file on disk."""
        return FIXTURES / self.file

    def body(self) -> bytes:
        """The answer's bytes, exactly as stored."""
        return self.fixture.read_bytes()


PHP_SDK = "v1p3r75/moov-money-api-php-sdk"
TS_SDK = "Brainsial/moov-money-api-sdk"
NOWORRI_TEST = "Noworri/MoovTest"
NOWORRI = "Noworri/moov"
FLZ_SDK = "azlabsphp/flz-sdk"
TM_SDK = "azandrew-sidoine/txn-tm-sdk"
APPORIO = "mwilenga/staride-aprorio"
APPORIO_YAS = "app/Http/Controllers/PaymentMethods/Yas/YasController.php"
TMONEY_NOTES = "kessa99/My_Node_prisma-doc"


def _records(**values: object) -> Mapping[str, object]:
    return MappingProxyType(values)


FLOOZ_SHAPES: tuple[Shape, ...] = (
    Shape(
        id="flooz-transfer-success-transactionid-ours",
        operator=Operator.FLOOZ,
        file="flooz/transfer_success.xml",
        repo=TS_SDK,
        path="servers/moov_money_test.server.ts",
        operation="transferFlooz",
        call=Call.PAYOUT,
        outcome=Outcome.SUCCEEDED,
        records=_records(reference=FLOOZ_PAYOUT_REF, operator_reference=MOOV_TRANSFER_ID),
        note="transactionid echoes the merchant's referenceid (the SDK's test sends "
        "1234567890 and reads it back there); referenceid is Moov's, as in the SMS "
        "'Ref :'. The answer is in the TS mock server's framing.",
    ),
    Shape(
        id="flooz-transfer-success-referenceid-ours",
        operator=Operator.FLOOZ,
        file="flooz/transfer_referenceid_ours.xml",
        repo=PHP_SDK,
        path="tests/Pest.php",
        operation="transferFlooz",
        call=Call.PAYOUT,
        outcome=Outcome.SUCCEEDED,
        records=_records(reference=FLOOZ_PAYOUT_REF, operator_reference=MOOV_CASHIN_STYLE_ID),
        note="getTransferFloozResponse's fields with the ids the other way round, as the same "
        "file's getCashInResponse places them (referenceid the merchant's, the other id "
        "Moov's): which field is ours is ambiguous across clients.",
    ),
    Shape(
        id="flooz-transfer-success-neither-id-ours",
        operator=Operator.FLOOZ,
        file="flooz/transfer_neither_ours.xml",
        repo=PHP_SDK,
        path="tests/Pest.php",
        operation="transferFlooz",
        call=Call.PAYOUT,
        outcome=Outcome.SUCCEEDED,
        records=_records(reference=FLOOZ_PAYOUT_REF, operator_reference="1234567890"),
        note="getTransferFloozResponse as the SDK's test replays it for a transfer sent "
        "with referenceid 'reference': neither id echoes the request. Never malformed "
        "for that; the outcome is the status; transactionid is preferred.",
    ),
    Shape(
        id="flooz-transfer-not-registered-555",
        operator=Operator.FLOOZ,
        file="flooz/transfer_not_registered_555.xml",
        repo=PHP_SDK,
        path="src/Common/data/status.php",
        operation="transferFlooz",
        call=Call.PAYOUT,
        outcome=Outcome.FAILED,
        reason=Reason.NOT_REGISTERED,
        note="status 555 with the table's text in the <return> shape of tests/Pest.php.",
    ),
    Shape(
        id="flooz-status-success-response-wrapper",
        operator=Operator.FLOOZ,
        file="flooz/status_success.xml",
        repo=PHP_SDK,
        path="tests/Pest.php",
        operation="getTransactionStatus",
        call=Call.PAYOUT_STATUS,
        outcome=Outcome.SUCCEEDED,
        records=_records(reference=FLOOZ_PAYOUT_REF, found=True),
        note="getTransactionStatusResponse: fields in <response>, description not message, "
        "referenceid echoing the value queried.",
    ),
    Shape(
        id="flooz-status-pending-100",
        operator=Operator.FLOOZ,
        file="flooz/status_pending_100.xml",
        repo=TS_SDK,
        path="src/common/data/status_description.ts",
        operation="getTransactionStatus",
        call=Call.PAYOUT_STATUS,
        outcome=Outcome.PENDING,
        note="100 'In pending state' in the <response> shape of servers/moov_money_test.server.ts.",
    ),
    Shape(
        id="flooz-status-not-found-94",
        operator=Operator.FLOOZ,
        file="flooz/status_not_found_94.xml",
        repo=PHP_SDK,
        path="src/Common/data/status.php",
        operation="getTransactionStatus",
        call=Call.PAYOUT_STATUS,
        outcome=Outcome.FAILED,
        reason=Reason.NOT_FOUND,
        records=_records(found=False),
        note="94 'Transaction does not exist': a resend must reuse the reference.",
    ),
    Shape(
        id="flooz-status-push-cancelled-92",
        operator=Operator.FLOOZ,
        file="flooz/status_push_cancelled_92.xml",
        repo=NOWORRI_TEST,
        path="app/Http/Controllers/MoovMoneyController.php",
        operation="getTransactionStatus",
        call=Call.COLLECTION_STATUS,
        outcome=Outcome.FAILED,
        reason=Reason.CANCELLED,
        note="getMoovCollectionStatus() reads getTransactionStatusResponse->response; 92 "
        "is its showStatusCodeError() 'Timeout in USSD PUSH/ Cancel in USSD PUSH'.",
    ),
    Shape(
        id="flooz-status-by-moov-id",
        operator=Operator.FLOOZ,
        file="flooz/status_by_moov_id.xml",
        repo=TS_SDK,
        path="tests/action/transaction_status.test.ts",
        operation="getTransactionStatus",
        call=Call.TRANSACTION_STATUS,
        outcome=Outcome.SUCCEEDED,
        records=_records(operator_reference=MOOV_TRANSFER_ID),
        note="the SDK queries transid '020190503000000' (Moov's id format) and its mock "
        "answers referenceid = that same id, in namespace http://tlc.com.ph/.",
    ),
    Shape(
        id="flooz-push-pending-100-result-wrapper",
        operator=Operator.FLOOZ,
        file="flooz/push_pending_100.xml",
        repo=PHP_SDK,
        path="tests/Pest.php",
        operation="PushWithPending",
        call=Call.REQUEST_COLLECTION,
        outcome=Outcome.PENDING,
        records=_records(reference=FLOOZ_COLLECTION_REF, operator_reference=None),
        note="getPushWithPendingResponse: <result>, description 'pending', status 100, no "
        "ids ('no reference id if request is pending').",
    ),
    Shape(
        id="flooz-push-success-0-result-wrapper",
        operator=Operator.FLOOZ,
        file="flooz/push_success_0.xml",
        repo=TS_SDK,
        path="servers/moov_money_test.server.ts",
        operation="PushWithPending",
        call=Call.REQUEST_COLLECTION,
        outcome=Outcome.SUCCEEDED,
        records=_records(reference=FLOOZ_COLLECTION_REF, operator_reference=MOOV_PUSH_ID),
        note="<transid> echoes the merchant's externaldata1 (pi_NyM_... in the SDK), "
        "<referenceid> is Moov's; namespace http://tlc.com.ph/.",
    ),
    Shape(
        id="flooz-push-pending-100-return-tlc-ph",
        operator=Operator.FLOOZ,
        file="flooz/push_pending_tlc_ph_return.xml",
        repo=NOWORRI_TEST,
        path="app/Http/Controllers/MoovMoneyController.php",
        operation="PushWithPending",
        call=Call.REQUEST_COLLECTION,
        outcome=Outcome.PENDING,
        note="moovPushWithPending() reads children('http://tlc.com.ph/')->return: the same "
        "answer in another namespace and wrapper.",
    ),
    Shape(
        id="flooz-push-unauthorised-4",
        operator=Operator.FLOOZ,
        file="flooz/push_unauthorised_4.xml",
        repo=PHP_SDK,
        path="tests/Feature/SoapRequest/SoapRequestParserTest.php",
        operation="PushWithPending",
        call=Call.REQUEST_COLLECTION,
        outcome=Outcome.UNKNOWN,
        note="<return>, description UNAUTHORISED_ERROR, status 4 with both ids: a push may "
        "already be under way under that reference, so a status query decides.",
    ),
    Shape(
        id="flooz-balance",
        operator=Operator.FLOOZ,
        file="flooz/balance.xml",
        repo=PHP_SDK,
        path="tests/Pest.php",
        operation="getBalance",
        call=Call.BALANCE,
        outcome=Outcome.SUCCEEDED,
        records=_records(balance=382222),
    ),
    Shape(
        id="flooz-balance-utf16-declared",
        operator=Operator.FLOOZ,
        file="flooz/balance_utf16_declared.xml",
        repo=TS_SDK,
        path="servers/moov_money_test.server.ts",
        operation="getBalance",
        call=Call.BALANCE,
        outcome=Outcome.SUCCEEDED,
        records=_records(balance=382222),
        note='responseBody(): <?xml version="1.0" encoding="utf-16"?> on UTF-8 bytes, '
        "namespace http://tlc.com.ph/ — the framing the clients also send.",
    ),
    Shape(
        id="flooz-mobile-account-status-active",
        operator=Operator.FLOOZ,
        file="flooz/mobile_status_active.xml",
        repo=PHP_SDK,
        path="tests/Pest.php",
        operation="getMobileAccountStatus",
        call=Call.LOOKUP,
        outcome=Outcome.SUCCEEDED,
        records=_records(status=AccountStatus.ACTIVE, first_name="KOFFI", last_name="AGBEKO"),
        note="getGetMobileStatusResponse with a Togolese holder.",
    ),
    Shape(
        id="flooz-soap-fault-http-400",
        operator=Operator.FLOOZ,
        file="flooz/fault_for_input_string.xml",
        repo=PHP_SDK,
        path="tests/Feature/MoovMoneyAPITest.php",
        operation="transferFlooz",
        call=Call.PAYOUT,
        outcome=Outcome.UNKNOWN,
        reason=Reason.OPERATOR_ERROR,
        http_status=400,
        note="getResponseError() (tests/Pest.php) replayed with HTTP 400: soap:Server "
        "'For input string'. Nothing proves the transfer did not run: query status.",
    ),
    Shape(
        id="flooz-soap-fault-http-500",
        operator=Operator.FLOOZ,
        file="flooz/fault_for_input_string.xml",
        repo=PHP_SDK,
        path="src/SoapRequest/SoapResponseParser.php",
        operation="transferFlooz",
        call=Call.PAYOUT,
        outcome=Outcome.UNKNOWN,
        reason=Reason.OPERATOR_ERROR,
        http_status=500,
        note="the same fault with SOAP 1.1's usual HTTP 500; parseError() reads "
        "faultcode/faultstring whatever the status.",
    ),
    Shape(
        id="flooz-callback-json",
        operator=Operator.FLOOZ,
        file="flooz/callback_debit.json",
        repo=FLZ_SDK,
        path="src/DebitCallback.php",
        operation="debit callback",
        call=Call.CALLBACK,
        outcome=Outcome.SUCCEEDED,
        records=_records(
            sika_reference=FLOOZ_COLLECTION_REF,
            operator_reference=MOOV_PUSH_ID,
            amount=160,
            msisdn=FLOOZ_PAYER,
        ),
        content_type=JSON,
        note="fromJson(): amount, refid (Moov's payment ref), mrchrefid (the merchant's), "
        "msisdn, status, message.",
    ),
    Shape(
        id="flooz-callback-form-encoded",
        operator=Operator.FLOOZ,
        file="flooz/callback_debit_form.txt",
        repo=FLZ_SDK,
        path="src/DebitCallback.php",
        operation="debit callback",
        call=Call.CALLBACK,
        outcome=Outcome.SUCCEEDED,
        records=_records(
            sika_reference=FLOOZ_COLLECTION_REF,
            operator_reference=MOOV_PUSH_ID,
            amount=160,
        ),
        content_type=FORM,
        note="the same fields form-encoded, as a Togolese integration reads them from "
        "$_POST (its repository is not named by the code index).",
    ),
)


TMONEY_SHAPES: tuple[Shape, ...] = (
    Shape(
        id="tmoney-signin-statut",
        operator=Operator.TMONEY,
        file="tmoney/signin_statut.json",
        repo=APPORIO,
        path=APPORIO_YAS,
        operation="POST /login",
        call=Call.SIGN_IN,
        outcome=Outcome.SUCCEEDED,
        records=_records(token="eyJhbGciOiJIUzI1NiJ9.c3RhdHV0.conformance"),
        content_type=JSON,
        note="createtoken(): $res['statut']['code'] == '2000' and $res['data']['token'].",
    ),
    Shape(
        id="tmoney-signin-top-level-code",
        operator=Operator.TMONEY,
        file="tmoney/signin_top_level.json",
        repo=TM_SDK,
        path="src/CreditCommand.php",
        operation="POST /login",
        call=Call.SIGN_IN,
        outcome=Outcome.SUCCEEDED,
        records=_records(token="eyJhbGciOiJIUzI1NiJ9.dG9wbGV2ZWw.conformance"),
        content_type=JSON,
        note="the top-level `code` every other gateway answer carries; no client reads "
        "/login this way: Sika's first model, kept for tolerance.",
    ),
    Shape(
        id="tmoney-signin-status-number",
        operator=Operator.TMONEY,
        file="tmoney/signin_status_number.json",
        repo=TM_SDK,
        path="tests/AuthorizationCommandTest.php",
        operation="POST /login",
        call=Call.SIGN_IN,
        outcome=Outcome.SUCCEEDED,
        records=_records(token="9f86d081884c7d659a2feaa0c55ad015"),
        content_type=JSON,
        note="AuthorizationCommand reads status.code (English, a JSON number) before statut.code.",
    ),
    Shape(
        id="tmoney-signin-refused-4001",
        operator=Operator.TMONEY,
        file="tmoney/signin_refused_4001.json",
        repo=APPORIO,
        path=APPORIO_YAS,
        operation="POST /login",
        call=Call.SIGN_IN,
        outcome=Outcome.FAILED,
        reason=Reason.CREDENTIALS_REJECTED,
        content_type=JSON,
        note="createtoken(): statut.code '4001' => 'Authentication Failed'.",
    ),
    Shape(
        id="tmoney-wso2-fault-401",
        operator=Operator.TMONEY,
        file="tmoney/wso2_fault_401.json",
        repo=APPORIO,
        path=APPORIO_YAS,
        operation="POST /m-banking/v1/api/tpcredit",
        call=Call.PAYOUT,
        outcome=Outcome.FAILED,
        reason=Reason.CREDENTIALS_REJECTED,
        http_status=401,
        content_type=JSON,
        note="makePaymentUsingyas() checks isset($result['fault']) and reads "
        "fault.message; the 900901 body is WSO2 API Manager's (modelled). Replayed on "
        "every call, the token is refused even after a fresh sign-in: nothing left.",
    ),
    Shape(
        id="tmoney-tpcredit-accepted-2000",
        operator=Operator.TMONEY,
        file="tmoney/tpcredit_accepted_2000.json",
        repo=APPORIO,
        path=APPORIO_YAS,
        operation="POST /m-banking/v1/api/tpcredit",
        call=Call.PAYOUT,
        outcome=Outcome.PENDING,
        content_type=JSON,
        note="$result['code'] == '2000' with $result['idRequete'] at the top level; "
        "ResponseCode 2000 'Application in process' (azandrew-sidoine/txn-tm-sdk).",
    ),
    Shape(
        id="tmoney-tpcredit-accepted-200-record",
        operator=Operator.TMONEY,
        file="tmoney/tpcredit_accepted_200_record.json",
        repo=TM_SDK,
        path="tests/CreditCommandTest.php",
        operation="POST /m-banking/v1/api/tpcredit",
        call=Call.PAYOUT,
        outcome=Outcome.PENDING,
        records=_records(operator_reference=TMONEY_CREDIT_REF),
        content_type=JSON,
        note="the transaction record at the top level, code 200 (a number), montant and "
        "soldePartenaire PHP floats, no statutRequete: accepted, not yet proof of payment; "
        "refTmoney is recorded.",
    ),
    Shape(
        id="tmoney-tpcredit-unmapped-5000",
        operator=Operator.TMONEY,
        file="tmoney/tpcredit_unmapped_5000.json",
        repo=TM_SDK,
        path="tests/CreditCommandTest.php",
        operation="POST /m-banking/v1/api/tpcredit",
        call=Call.PAYOUT,
        outcome=Outcome.UNKNOWN,
        reason=Reason.UNMAPPED_CODE,
        content_type=JSON,
        note="{'code': 5000, 'message': 'Not Found'}: a code no table knows stays unknown.",
    ),
    Shape(
        id="tmoney-check-succes-2002",
        operator=Operator.TMONEY,
        file="tmoney/check_succes_2002.json",
        repo=TM_SDK,
        path="src/CheckCreditStatusCommand.php",
        operation="GET /m-banking/v1/api/tpcredit/check-transaction-id",
        call=Call.PAYOUT_STATUS,
        outcome=Outcome.SUCCEEDED,
        records=_records(
            reference=TMONEY_PAYOUT_REF, operator_reference=TMONEY_CREDIT_REF, amount=40000
        ),
        content_type=JSON,
        note="records read from `data` (an array); record fields as kessa99/"
        "My_Node_prisma-doc note/callbackadmin.md lists them; SUCCES with 2002.",
    ),
    Shape(
        id="tmoney-check-echec-description",
        operator=Operator.TMONEY,
        file="tmoney/check_echec_client_inconnu.json",
        repo=TM_SDK,
        path="src/CheckCreditStatusCommand.php",
        operation="GET /m-banking/v1/api/tpcredit/check-transaction-id",
        call=Call.PAYOUT_STATUS,
        outcome=Outcome.FAILED,
        reason=Reason.NOT_REGISTERED,
        records=_records(operator_reference=TMONEY_CREDIT_REF),
        content_type=JSON,
        note="ECHEC with the reason in `description` (reason strings modelled).",
    ),
    Shape(
        id="tmoney-check-en-cours",
        operator=Operator.TMONEY,
        file="tmoney/check_en_cours.json",
        repo=TM_SDK,
        path="src/CheckCreditStatusCommand.php",
        operation="GET /m-banking/v1/api/tpcredit/check-transaction-id",
        call=Call.PAYOUT_STATUS,
        outcome=Outcome.PENDING,
        content_type=JSON,
    ),
    Shape(
        id="tmoney-check-code-200-no-statut",
        operator=Operator.TMONEY,
        file="tmoney/check_code_200_no_statut.json",
        repo=TM_SDK,
        path="tests/CheckCreditStatusCommandTest.php",
        operation="GET /m-banking/v1/api/tpcredit/check-transaction-id",
        call=Call.PAYOUT_STATUS,
        outcome=Outcome.SUCCEEDED,
        records=_records(operator_reference=TMONEY_CREDIT_REF, amount=40000),
        content_type=JSON,
        note="the test's record: code 200 (ResponseCode SUCCESS), message OK, no "
        "statutRequete; success read from the code.",
    ),
    Shape(
        id="tmoney-check-code-2001",
        operator=Operator.TMONEY,
        file="tmoney/check_code_2001.json",
        repo=TM_SDK,
        path="src/ResponseCode.php",
        operation="GET /m-banking/v1/api/tpcredit/check-transaction-id",
        call=Call.PAYOUT_STATUS,
        outcome=Outcome.PENDING,
        content_type=JSON,
        note="2001 'Callback successfully executed': not yet a SUCCES record.",
    ),
    Shape(
        id="tmoney-check-empty",
        operator=Operator.TMONEY,
        file="tmoney/check_empty.json",
        repo=TM_SDK,
        path="src/CheckCreditStatusCommand.php",
        operation="GET /m-banking/v1/api/tpcredit/check-transaction-id",
        call=Call.PAYOUT_STATUS,
        outcome=Outcome.FAILED,
        reason=Reason.NOT_FOUND,
        records=_records(found=False),
        content_type=JSON,
        note="`data` empty ('?? []'): no transaction under this idRequete.",
    ),
    Shape(
        id="tmoney-push-debit-accepted-2000",
        operator=Operator.TMONEY,
        file="tmoney/push_debit_accepted_2000.json",
        repo=TM_SDK,
        path="tests/DebitCommandTest.php",
        operation="POST /push-api/v1/debit",
        call=Call.REQUEST_COLLECTION,
        outcome=Outcome.PENDING,
        content_type=JSON,
        note="{'code': 2000, 'message': 'OK', 'idRequete': ...}: the payer is asked.",
    ),
    Shape(
        id="tmoney-push-debit-bad-pin-501",
        operator=Operator.TMONEY,
        file="tmoney/push_debit_bad_pin_501.json",
        repo=TM_SDK,
        path="src/ResponseCode.php",
        operation="POST /push-api/v1/debit",
        call=Call.REQUEST_COLLECTION,
        outcome=Outcome.FAILED,
        reason=Reason.WRONG_PIN,
        records=_records(retryable=True),
        content_type=JSON,
        note="501 'Bad pin code': the payer mistyped the PIN; asking again may succeed.",
    ),
    Shape(
        id="tmoney-push-transactionid-succes",
        operator=Operator.TMONEY,
        file="tmoney/push_transactionid_succes.json",
        repo=TMONEY_NOTES,
        path="note/checktransaction.md",
        operation="GET /push-api/v1/transactionid",
        call=Call.COLLECTION_STATUS,
        outcome=Outcome.SUCCEEDED,
        records=_records(
            reference=TMONEY_COLLECTION_REF, operator_reference=TMONEY_DEBIT_REF, amount=160
        ),
        content_type=JSON,
        note="GET .../transactionid?idRequete= (the push status route); the answer's "
        "record shape is modelled on check-transaction-id's.",
    ),
    Shape(
        id="tmoney-callback-credit-succes",
        operator=Operator.TMONEY,
        file="tmoney/callback_credit_succes.json",
        repo=APPORIO,
        path=APPORIO_YAS,
        operation="callback",
        call=Call.CALLBACK,
        outcome=Outcome.SUCCEEDED,
        records=_records(
            sika_reference=TMONEY_PAYOUT_REF,
            operator_reference=TMONEY_CREDIT_REF,
            amount=40000,
            msisdn=TMONEY_PAYEE,
        ),
        content_type=JSON,
        note="YasCallBack(): idRequete, refCommande, statutRequete == 'SUCCES'.",
    ),
)

SHAPES: tuple[Shape, ...] = FLOOZ_SHAPES + TMONEY_SHAPES

# The sign-in the T-Money replays answer with when the shape is not itself a sign-in.
TMONEY_SIGN_IN = next(s for s in TMONEY_SHAPES if s.id == "tmoney-signin-statut")
