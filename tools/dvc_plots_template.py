"""Write tools/dvc_plots_offline.html: the page template `dvc plots show/diff` fill in,
with Vega, Vega-Lite and Vega-Embed inlined instead of fetched from a CDN, so the page
DVC writes opens (and draws its plots) with no network.

    python tools/dvc_plots_template.py        # needs vl-convert-python (pip install)

.dvc/config points DVC at it (`plots.html_template`). The libraries come from
vl-convert-python's bundle (`vl_convert.javascript_bundle`), which defines the global
`vegaEmbed` that DVC's plot snippets call.
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parent / "dvc_plots_offline.html"
VEGA_LITE = "v5.21"  # DVC's plot specs declare Vega-Lite v5

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <script>
VEGA_BUNDLE
    </script>
    <style>
        body { font-family: system-ui, sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def main() -> None:
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    if "{plot_divs}" in bundle or "</script" in bundle:
        raise SystemExit("the bundle holds text that would break the template")
    OUT.write_text(PAGE.replace("VEGA_BUNDLE", bundle), encoding="utf-8")
    print(f"{OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
