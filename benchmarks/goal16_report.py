"""Issue 16 goals, read from the goal runs' ``bench.json`` files (``benchmarks/goal16.sh``): per model,
per NFE, our samplers against the best peer on its best grid (any of its default, ``dp`` and
``auto`` entries), the NFE-4-vs-Euler-16 goal, the NFE-4 classifier-FID goal; prints Markdown,
writes ``goal16.json`` and a two-panel figure ``goal16_rmse.png`` (one panel per model, a distinct
colour and marker per curve; each peer drawn at its best grid per NFE).

    python benchmarks/goal16_report.py benchmarks/results/goal_gmm/bench.json \
        benchmarks/results/goal_mnist/bench.json --out benchmarks/results/goal16
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lazysi.numeric.sampling.registry import resolve

#: the one default rule of ours the goals are checked for (``--nfe-budget N``: the auto grid)
DEFAULT = "lazy-cov-pc@auto"
GOAL_NFE = (2, 3, 4, 6, 8, 12, 16)


def _base(name: str) -> str:
    return name.partition("@")[0]


def _analyse(model: str, res: dict) -> dict:
    rows = [r for r in res["rows"] if r.get("rmse") is not None]
    nfes = sorted({r["nfe"] for r in rows})
    ours = {r["sampler"] for r in rows if resolve(r["sampler"]).origin in ("lazysi", "paper")}
    peers = {r["sampler"] for r in rows if resolve(r["sampler"]).origin == "peer"}
    val = {(r["sampler"], r["nfe"]): r["rmse"] for r in rows}
    table = []
    for k in nfes:
        best_peer = min(((val[(p, k)], p) for p in peers if (p, k) in val), default=None)
        best_ours = min(((val[(s, k)], s) for s in ours if (s, k) in val), default=None)
        default = val.get((DEFAULT, k))
        table.append({"nfe": k, "best_peer": best_peer, "best_ours": best_ours, "default": default,
                      "ratio_default": None if default is None or best_peer is None else best_peer[0] / default,
                      "ratio_best": None if best_ours is None or best_peer is None else best_peer[0] / best_ours[0]})
    euler16 = val.get(("euler", 16))
    # the model's own law where there is one (mnist-gmm: FID to its exact samples), else the held-out digits
    key = "fid_exact" if any("fid_exact" in r for r in res.get("fid", [])) else "fid"
    fid = {(r["sampler"], r["nfe"]): r[key] for r in res.get("fid", [])}
    fid_peer = min(((v, s) for (s, k), v in fid.items() if k == 4 and resolve(s).origin == "peer"), default=None)
    fid_ours = min(((v, s) for (s, k), v in fid.items() if k == 4 and resolve(s).origin in ("lazysi", "paper")), default=None)
    per_peer = {}
    for p in sorted({_base(p) for p in peers}):
        per_peer[p] = {k: min((val[(q, k)], q) for q in peers if _base(q) == p and (q, k) in val) for k in nfes
                       if any(_base(q) == p and (q, k) in val for q in peers)}
    return {"model": model, "table": table, "euler16": euler16, "default_nfe4": val.get((DEFAULT, 4)),
            "fid_nfe4": {"metric": key, "best_peer": fid_peer, "best_ours": fid_ours, "default": fid.get((DEFAULT, 4)),
                         "all": {f"{s}@{k}": v for (s, k), v in sorted(fid.items())}},
            "per_peer_best_grid": {p: {str(k): v for k, v in d.items()} for p, d in per_peer.items()},
            "ours": {s: {str(k): val[(s, k)] for k in nfes if (s, k) in val} for s in sorted(ours)},
            "pilots": res.get("pilots"), "reference": res.get("reference")}


def _fmt(x, digits=4):
    return "—" if x is None else f"{x:.{digits}f}"


def _markdown(a: dict) -> str:
    out = [f"### {a['model']}: ours vs the best peer on its best grid (pathwise RMSE)\n",
           f"| NFE | best peer (entry) | {DEFAULT} | ratio | best of ours (entry) | ratio |", "|---|---|---|---|---|---|"]
    for r in a["table"]:
        bp, bo = r["best_peer"], r["best_ours"]
        out.append(f"| {r['nfe']} | {_fmt(bp and bp[0])} ({bp and bp[1]}) | {_fmt(r['default'])} | {_fmt(r['ratio_default'], 2)} "
                   f"| {_fmt(bo and bo[0])} ({bo and bo[1]}) | {_fmt(r['ratio_best'], 2)} |")
    f = a["fid_nfe4"]
    out.append(f"\nEuler at NFE 16: {_fmt(a['euler16'])}; {DEFAULT} at NFE 4: {_fmt(a['default_nfe4'])}. "
               f"Classifier-FID ({f['metric']}) at NFE 4: best peer {f['best_peer']}, best of ours {f['best_ours']}, "
               f"{DEFAULT} {f['default']}.\n")
    return "\n".join(out)


def _plot(analyses: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(analyses), figsize=(7 * len(analyses), 5), squeeze=False)
    colours = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)
    markers = "os^Dv<>pPX*h"
    def curves(a: dict) -> list:
        out = [(s, {int(k): v for k, v in d.items()}, "-") for s, d in a["ours"].items()
               if s in (DEFAULT, "lazy-cov-pcd@auto", "lazy-cov-pc")]
        return out + [(f"{p} (best grid)", {int(k): v[0] for k, v in d.items()}, "--") for p, d in a["per_peer_best_grid"].items()]

    labels = sorted({c[0] for a in analyses for c in curves(a)})  # one colour and marker per label in every panel
    for ax, a in zip(axes[0], analyses):
        for label, pts, style in curves(a):
            i = labels.index(label)
            ks = sorted(pts)
            ax.plot(ks, [pts[k] for k in ks], style, color=colours[i % len(colours)], marker=markers[i % len(markers)],
                    label=label, linewidth=2.2 if label == DEFAULT else 1.2)
        if a["euler16"] is not None:
            ax.axhline(a["euler16"], color="grey", linestyle=":", label="Euler at NFE 16")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("NFE")
        ax.set_ylabel("pathwise RMSE to the reference")
        ax.set_title(a["model"])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    analyses = []
    for path in args.bench:
        data = json.loads(path.read_text())
        for model, res in data["models"].items():
            analyses.append(_analyse(model, res))
    args.out.mkdir(parents=True, exist_ok=True)
    for a in analyses:
        print(_markdown(a))
    (args.out / "goal16.json").write_text(json.dumps(analyses, indent=1) + "\n")
    _plot(analyses, args.out / "goal16_rmse.png")
    print(f"wrote {args.out / 'goal16.json'} and {args.out / 'goal16_rmse.png'}")


if __name__ == "__main__":
    main()
