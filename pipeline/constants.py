"""Wire strings and default sizes of the Privacy Service, in one place (client side).

The emulator keeps its own copy of these facts on purpose (DESIGN.md section 8): if the two
sides shared one table they would agree with each other rather than with the service.
"""

from __future__ import annotations

from typing import Final

API_BASE_PATH: Final = "/data/core/privacy/"
IMS_TOKEN_PATH: Final = "ims/token/v3"
DEFAULT_API_HOST: Final = "https://platform.adobe.io"
DEFAULT_IMS_URL: Final = "https://ims-na1.adobelogin.com/"

MAX_USERS_PER_REQUEST: Final = 1000
MAX_IDS_PER_USER: Final = 9
MAX_LIST_PAGE_SIZE: Final = 1000
MAX_LIST_WINDOW_DAYS: Final = 30
MAX_LOOKBACK_DAYS: Final = 45
DEFAULT_DAILY_JOB_CAP: Final = 20_000
GATEWAY_TIMEOUT_S: Final = 60.0
KEY_SECRET_ENV: Final = "DSAR_KEY_SECRET"  # the keyed-hash secret (pipeline.keys)

# The client's defaults: settings.ApiSettings, PrivacyServiceClient and RetryPolicy all use these.
DEFAULT_TIMEOUT_S: Final = 30.0  # below the gateway's 60 s
DEFAULT_CONNECT_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_RETRIES: Final = 6
DEFAULT_BACKOFF_BASE_S: Final = 0.5
DEFAULT_BACKOFF_CAP_S: Final = 60.0

ACTIONS: Final = ("access", "delete")
OPT_OUT_OF_SALE: Final = "opt-out-of-sale"
JOB_STATUSES: Final = ("submitted", "processing", "complete", "error")
TERMINAL_STATUSES: Final = frozenset({"complete", "error"})
PRIORITIES: Final = ("normal", "low")

# Current regulation values (accepted since 12 June 2025).
REGULATIONS: Final = frozenset(
    {
        "apa_aus", "ccpa", "cpa_co_usa", "cpra_ca_usa", "ctdpa_ct_usa", "dpdpa_de_usa",
        "fdbr_fl_usa", "gdpr", "hipaa_usa", "icdpa_ia_usa", "lgpd_bra", "mcdpa_mn_usa",
        "mcdpa_mt_usa", "mhmda_wa_usa", "modpa_md_usa", "ndpa_ne_usa", "nhpa_nh_usa",
        "njdpa_nj_usa", "nzpa_nzl", "ocpa_or_usa", "pdpa_tha", "pipa_kor", "ql25_qc_can",
        "tdpsa_tx_usa", "tipa_tn_usa", "ucpa_ut_usa", "vcdpa_va_usa",
    }
)  # fmt: skip

# Deprecated value -> current value. The old values stopped working after 28 July 2025;
# dsar maps them with a warning so that old request files keep working.
DEPRECATED_REGULATIONS: Final = {
    "cpra_usa": "cpra_ca_usa",
    "cpa_usa": "cpa_co_usa",
    "cpa": "cpa_co_usa",
    "ctdpa_usa": "ctdpa_ct_usa",
    "ctdpa": "ctdpa_ct_usa",
    "dpdpa": "dpdpa_de_usa",
    "dpdpa_usa": "dpdpa_de_usa",
    "fdbr_usa": "fdbr_fl_usa",
    "icdpa_usa": "icdpa_ia_usa",
    "mcdpa_usa": "mcdpa_mt_usa",
    "mhmda_usa": "mhmda_wa_usa",
    "mhmda": "mhmda_wa_usa",
    "ndpa_usa": "ndpa_ne_usa",
    "nhpa_usa": "nhpa_nh_usa",
    "njdpa_usa": "njdpa_nj_usa",
    "ocpa_usa": "ocpa_or_usa",
    "ql25": "ql25_qc_can",
    "ql25_can": "ql25_qc_can",
    "tdpsa_usa": "tdpsa_tx_usa",
    "ucpa_usa": "ucpa_ut_usa",
    "vcdpa_usa": "vcdpa_va_usa",
}

# Standard namespaces: canonical wire spelling and namespace id, keyed by lower-case name.
STANDARD_NAMESPACES: Final = {
    "email": ("email", 6),
    "phone": ("phone", 7),
    "adcloud": ("AdCloud", 411),
    "core": ("CORE", 0),
    "ecid": ("ECID", 4),
    "tntid": ("TNTID", 9),
    "idfa": ("IDFA", 20915),
    "gaid": ("GAID", 20914),
    "waid": ("WAID", 8),
    "aaid": ("AAID", 10),
}

# Namespace qualifiers (`userIDs[].type`).
ID_TYPES: Final = frozenset(
    {"standard", "custom", "integrationCode", "namespaceId", "unregistered", "analytics", "target"}
)

# Product codes for `include`, matched case-insensitively; keyed by lower case.
PRODUCTS: Final = {
    p.lower(): p
    for p in (
        "analytics", "audienceManager", "adCloud", "profileService", "aepDataLake", "campaign",
        "target", "CRS", "cjm", "marketo", "identity", "marketomeasure",
        "commerceMarketingData", "primetimeAuthentication",
    )
}  # fmt: skip

# Response codes of a product's outcome, and what dsar calls them in reports.
RESPONSE_OUTCOMES: Final = {
    "PRVCY-6000-200": "success",
    "PRVCY-6051-200": "not_provisioned",
    "PRVCY-6052-200": "ids_not_found",
    "PRVCY-6054-200": "partial",
}
THROTTLE_CODE: Final = "PRVCY-1030-400"

# the name of the one org of a config without [[orgs]] tables (pipeline.settings.Org)
DEFAULT_ORG: Final = "default"
