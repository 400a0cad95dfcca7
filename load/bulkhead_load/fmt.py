"""The one number format of the report, and ratios that survive missing figures."""


def ratio(a, b, nd=2):
    return round(a / b, nd) if a is not None and b else None


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)
