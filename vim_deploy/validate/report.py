"""Validation reports: JSON for machines, Markdown for people (both written atomically)."""

from __future__ import annotations


from vim_deploy.io_utils import dumps_json, atomic_write_text


def to_markdown(report: dict) -> str:
    inp = report["inputs"] or {}
    lines = [
        f"# vim-deploy validate: {report['model']}",
        "",
        f"- verdict: **{'PASSED' if report['passed'] else 'FAILED'}**",
        f"- reference: {report['reference']} (weights: {report['checkpoint']})",
        f"- inputs: {inp.get('random', 0)} random (seed {inp.get('seed')}) + {len(inp.get('images', []))} images"
        f" at {inp.get('img_size')}x{inp.get('img_size')}",
        f"- date: {report['date']}; {report['tool']}; torch {report['machine']['torch']}",
        "",
        "| backend | graph | precision | cosine min | rel L2 | max abs | top-1 | top-5 set | time s | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        m = r["metrics"]
        verdict = "PASSED" if r["passed"] else "FAILED: " + "; ".join(r["why"])
        lines.append(
            f"| {r['backend']} | {r['graph']}{' (' + str(r['onnx']) + ')' if r['onnx'] else ''} | {r['precision']} | "
            f"{m['cosine_min']:.8f} | {m['rel_l2']:.2e} | {m['max_abs']:.2e} | {m['top1_agreement']:.1%} | "
            f"{m['top5_agreement']:.1%} | {r['seconds']:.2f} | {verdict} |")
    lines += ["", "Thresholds (per precision, candidate vs the fp32 PyTorch reference):", ""]
    seen = set()
    for r in report["results"]:
        if r["precision"] not in seen:
            seen.add(r["precision"])
            th = r["thresholds"]
            lines.append(f"- {r['precision']}: cosine_min >= {th['min_cosine']}, top-1 >= {th['min_top1']:.0%}, "
                         f"rel L2 <= {th['max_rel_l2']}")
    return "\n".join(lines) + "\n"


def write_reports(report: dict, json_path: str | None, md_path: str | None) -> None:
    if json_path:
        atomic_write_text(json_path, dumps_json(report))
    if md_path:
        atomic_write_text(md_path, to_markdown(report))
