"""Identifiers and names: licences, registered names, towns and pseudonymous ids.

``merchant_id`` is a plausible unified social credit code (统一社会信用代码, GB 32100-2015) of
Fengxian district (administrative code 310120), with valid check digits: ``91...`` for companies,
``92...`` for individual businesses (个体工商户). Consumers and legal representatives only ever
appear as pseudonymous hex ids.
"""

from __future__ import annotations

import random

#: Towns and sub-districts of Fengxian with a rough weight for where shops are.
TOWNS: dict[str, float] = {
    "南桥镇": 0.22,
    "奉城镇": 0.10,
    "庄行镇": 0.06,
    "金汇镇": 0.08,
    "四团镇": 0.07,
    "青村镇": 0.08,
    "柘林镇": 0.07,
    "海湾镇": 0.05,
    "西渡街道": 0.07,
    "奉浦街道": 0.08,
    "金海街道": 0.08,
    "海湾旅游区": 0.04,
}

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_BODY_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
FENGXIAN_CODE = "310120"

_BRAND_CHARS = "悦美颜尚雅韵馨丽秀悠瑞恒卓朗锦康沐禾逸星艺御初然源铂澜熙蔓宸汐"
_FITNESS_BRAND_CHARS = "力动能健跃飞驰劲锐燃启航超凡途翼峰"
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "beauty": ("美容院", "美容美体店", "皮肤管理中心", "美容会所"),
    "hairdressing": ("美发店", "美发工作室", "造型", "理发店"),
    "fitness": ("健身中心", "健身房", "瑜伽馆", "游泳健身会所", "搏击健身馆"),
    "other": ("养生馆", "美甲店", "推拿馆", "足浴店"),
}
_COMPANY_WORDS: dict[str, str] = {
    "beauty": "美容",
    "hairdressing": "美发",
    "fitness": "健身",
    "other": "养生",
}


def _org_code(rng: random.Random) -> str:
    """A 9-character organisation code (8 body characters + GB 11714 check character)."""
    body = "MA" + "".join(rng.choice(_ORG_BODY_CHARS) for _ in range(6))
    total = sum(_value(c) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return body + ("X" if check == 10 else "0" if check == 11 else str(check))


def _value(char: str) -> int:
    return int(char) if char.isdigit() else ord(char) - 55


def uscc(rng: random.Random, individual: bool) -> str:
    """A unified social credit code of a Fengxian business with a valid check character.

    >>> code = uscc(random.Random(1), individual=False)
    >>> len(code), code[:8], uscc_is_valid(code)
    (18, '91310120', True)
    """
    stem = ("92" if individual else "91") + FENGXIAN_CODE + _org_code(rng)
    return stem + _uscc_check(stem)


def _uscc_check(stem: str) -> str:
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(stem, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def uscc_is_valid(code: str) -> bool:
    return len(code) == 18 and _uscc_check(code[:17]) == code[17]


def pseudonym(rng: random.Random, prefix: str) -> str:
    """A pseudonymous id such as ``u3f9a0c1d2e4b``."""
    return f"{prefix}{rng.getrandbits(48):012x}"


def brand(rng: random.Random, industry: str) -> str:
    chars = _FITNESS_BRAND_CHARS if industry == "fitness" else _BRAND_CHARS
    return rng.choice(_BRAND_CHARS) + rng.choice(chars)


def registered_name(
    rng: random.Random, brand_name: str, industry: str, town: str, individual: bool, branch: bool
) -> str:
    """The registered name of an operator, e.g. ``上海悦动健身管理有限公司南桥分公司``."""
    if individual:
        return f"上海市奉贤区{town}{brand_name}{rng.choice(_SUFFIXES[industry])}"
    company = f"上海{brand_name}{_COMPANY_WORDS[industry]}管理有限公司"
    if branch:
        return f"{company}{town.removesuffix('镇').removesuffix('街道')}分公司"
    return company


def draw_town(rng: random.Random) -> str:
    return rng.choices(list(TOWNS), weights=list(TOWNS.values()))[0]
