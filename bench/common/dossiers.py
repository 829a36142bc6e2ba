"""What the clerks post: a provincial one-stop centre's agencies and procedures (set up through
the API, tokens made as `motcua token create` makes them) and realistic Vietnamese applicants,
each with a mobile number of their own so that an SMS names the request it answers.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common.http import HttpConnection, bearer
from services.core.phones import normalise_phone
from services.core.runtime.database import create_engine
from services.intake.adapters.tokens import create_token


@dataclass(frozen=True)
class ProcedureSpec:
    code: str
    name: str
    agency: str
    time_limit: tuple[int, str]
    cutoff: str | None = None
    postal_return: bool = True

    def body(self) -> bytes:
        value, unit = self.time_limit
        return json.dumps(
            {
                "code": self.code,
                "name": self.name,
                "agency_code": self.agency,
                "time_limit": {"value": value, "unit": unit},
                "cutoff_time": self.cutoff,
                "postal_return": self.postal_return,
            }
        ).encode()


# A provincial one-stop centre and district offices: where a clerk sits, what they receive.
PROCEDURES = (
    ProcedureSpec("DD-01", "Đăng ký biến động đất đai", "VPDK-Q1", (10, "working_days"), "15:00"),
    ProcedureSpec("DD-02", "Cấp đổi giấy chứng nhận quyền sử dụng đất", "VPDK-Q1",
                  (7, "working_days")),
    ProcedureSpec("HT-01", "Đăng ký khai sinh", "UBND-P1", (3, "working_days")),
    ProcedureSpec("HT-02", "Đăng ký kết hôn", "UBND-P1", (5, "working_days"), postal_return=False),
    ProcedureSpec("HT-03", "Cấp bản sao trích lục hộ tịch", "UBND-P7", (8, "working_hours")),
    ProcedureSpec("HT-04", "Đăng ký khai tử", "UBND-P7", (3, "working_days")),
    ProcedureSpec("KD-01", "Đăng ký hộ kinh doanh", "UBND-Q3", (3, "working_days"), "15:00"),
    ProcedureSpec("KD-02", "Đăng ký thành lập doanh nghiệp", "SKHDT", (3, "working_days")),
    ProcedureSpec("XD-01", "Cấp giấy phép xây dựng nhà ở riêng lẻ", "SXD", (15, "working_days")),
    ProcedureSpec("TP-01", "Cấp phiếu lý lịch tư pháp", "STP", (10, "working_days")),
    ProcedureSpec("LD-01", "Hưởng trợ cấp thất nghiệp", "SLDTBXH", (20, "calendar_days")),
    ProcedureSpec("GT-01", "Cấp đổi giấy phép lái xe", "SGTVT", (5, "working_days")),
)  # fmt: skip


AGENCIES = tuple(dict.fromkeys(p.agency for p in PROCEDURES))


async def create_tokens(intake_url: str, roles: Sequence[tuple[str, str | None]]) -> list[str]:
    """Bearer tokens, made as `motcua token create` makes them (straight into the intake's
    database; the command itself spends a second and a half importing per token)."""
    from services.core.runtime.clock import system_clock

    engine = create_engine(intake_url)
    try:
        async with engine.begin() as conn:
            return [
                await create_token(conn, role, agency, None, system_clock())  # type: ignore[arg-type]
                for role, agency in roles
            ]
    finally:
        await engine.dispose()


async def open_office(intake_url: str, port: int) -> dict[str, str]:
    """The catalogue set up through the intake at `port` with an admin's token; a clerk's
    token for each agency, by agency."""
    roles: list[tuple[str, str | None]] = [("admin", None)]
    roles += [("clerk", agency) for agency in AGENCIES]
    admin, *clerk_tokens = await create_tokens(intake_url, roles)
    await set_up_catalogue(port, admin)
    return dict(zip(AGENCIES, clerk_tokens, strict=True))


async def set_up_catalogue(port: int, admin_token: str) -> None:
    """The procedures, through the API as an admin does it (agencies come with them)."""
    conn = HttpConnection(port)
    try:
        for spec in PROCEDURES:
            auth = bearer(admin_token)
            status, body = await conn.request("POST", "/procedures", spec.body(), auth)
            if status not in (201, 409):
                raise RuntimeError(f"POST /procedures {spec.code}: {status} {body[:200]!r}")
    finally:
        conn.close()


SURNAMES = ("Nguyễn",) * 8 + ("Trần",) * 3 + ("Lê",) * 2 + (
    "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý",
)  # fmt: skip


MIDDLE = ("Văn", "Thị", "Hữu", "Đức", "Minh", "Thanh", "Ngọc", "Quang", "Thu", "Xuân", "Kim")


GIVEN = (
    "An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hiếu", "Hoa", "Hùng", "Hương",
    "Khánh", "Lan", "Linh", "Long", "Mai", "Minh", "Nam", "Nhung", "Phong", "Phương", "Quân",
    "Sơn", "Tâm", "Thảo", "Thắng", "Trang", "Trung", "Tuấn", "Vy", "Yến",
)  # fmt: skip


MOBILE_PREFIXES = (
    "090", "091", "093", "094", "096", "097", "098", "086", "088", "032", "033", "034",
    "035", "036", "037", "038", "039", "070", "076", "077", "078", "079", "081", "082", "083",
    "084", "085", "056", "058", "059",
)  # fmt: skip


PROVINCE_CODES = ("001", "079", "048", "031", "092", "075", "074", "038", "040", "046")


STREETS = ("Lê Lợi", "Nguyễn Huệ", "Trần Hưng Đạo", "Hai Bà Trưng", "Lý Thường Kiệt", "Pasteur")


WARDS = (
    ("Bến Nghé", "Quận 1"), ("Bến Thành", "Quận 1"), ("Võ Thị Sáu", "Quận 3"),
    ("Phường 7", "Quận 3"), ("Tân Định", "Quận 1"),
)  # fmt: skip


def phone_of(serial: int) -> str:
    """A distinct, valid Vietnamese mobile number per serial (10 million per prefix)."""
    prefix = MOBILE_PREFIXES[(serial // 10_000_000) % len(MOBILE_PREFIXES)]
    return f"{prefix}{serial % 10_000_000:07d}"


def e164_of(serial: int) -> str:
    return "+84" + phone_of(serial)[1:]


class Applicants:
    """POST /dossiers bodies with realistic Vietnamese applicants: the applicant of serial n
    has the phone `phone_of(n)`, so an SMS names the request it answers."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def body(self, serial: int, procedure: ProcedureSpec) -> dict[str, Any]:
        rng = self._rng
        female = rng.random() < 0.5
        middle = "Thị" if female and rng.random() < 0.6 else rng.choice(MIDDLE)
        applicant: dict[str, Any] = {
            "full_name": f"{rng.choice(SURNAMES)} {middle} {rng.choice(GIVEN)}",
            "phone": phone_of(serial),
            "id_number": self._cccd(female),
        }
        if rng.random() < 0.2:
            applicant["email"] = f"congdan{serial}@example.vn"
        body: dict[str, Any] = {
            "procedure_code": procedure.code,
            "applicant": applicant,
            "channel": rng.choices(("counter", "online", "postal"), (6, 3, 1))[0],
            "return_method": "counter",
        }
        if procedure.postal_return and rng.random() < 0.25:
            ward, district = rng.choice(WARDS)
            body["return_method"] = "postal"
            body["return_address"] = {
                "street": f"{rng.randint(1, 300)} {rng.choice(STREETS)}",
                "ward": f"Phường {ward}" if not ward.startswith("Phường") else ward,
                "district": district,
                "province": "TP Hồ Chí Minh",
            }
        return body

    def encoded(self, serial: int, procedure: ProcedureSpec) -> bytes:
        return json.dumps(self.body(serial, procedure), ensure_ascii=False).encode()

    def _cccd(self, female: bool) -> str:
        rng = self._rng
        year = rng.randint(1950, 2006)
        century = (0 if year < 2000 else 2) + (1 if female else 0)
        return f"{rng.choice(PROVINCE_CODES)}{century}{year % 100:02d}{rng.randint(0, 999_999):06d}"


def check_phones() -> None:
    """Every prefix gives numbers the intake accepts (a wrong table would show as 422s)."""
    for index in range(len(MOBILE_PREFIXES)):
        serial = index * 10_000_000 + 1234
        assert normalise_phone(phone_of(serial)) == e164_of(serial), phone_of(serial)


BODIES_PER_AGENCY = 1000


BODY_SEED = 20261123  # the applicants of the intake benchmark and of the ceiling


def bodies_by_agency(
    seed: int = BODY_SEED, per_agency: int = BODIES_PER_AGENCY
) -> dict[str, list[bytes]]:
    """POST /dossiers bodies, `per_agency` for each agency's procedures, encoded once."""
    applicants = Applicants(seed)
    serial = itertools.count(1)
    bodies: dict[str, list[bytes]] = {}
    for agency in AGENCIES:
        procedures = [p for p in PROCEDURES if p.agency == agency]
        bodies[agency] = [
            applicants.encoded(next(serial), procedures[i % len(procedures)])
            for i in range(per_agency)
        ]
    return bodies
