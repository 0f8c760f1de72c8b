"""The report's plots: dev WER against total compute per data setting and depth, test WER against parameters."""

from __future__ import annotations

from pathlib import Path

from nemo_encrl.bench import accounting as acc


def write_plots(cfg, costs, results: dict, teacher: dict, hours: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    panels = sorted({(r["data"], r["depth"]) for r in results.values()}, key=lambda p: (p[0], -p[1]))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4.5), squeeze=False)
    colors = {}
    for ax, (data, depth) in zip(axes[0], panels):
        for r in results.values():
            if (r["data"], r["depth"]) != (data, depth):
                continue
            color = colors.setdefault(r["method"], f"C{len(colors) % 10}")
            pts = acc.compute_curve(cfg, costs, r, hours[data])
            if pts:
                ax.plot(*zip(*[(u, 100 * w) for u, w in pts]), color=color, marker=".", label=f"{r['method']} s{r['seed']}")
            if r["kind"] == "encrl" and (pts := acc.compute_curve(cfg, costs, r, hours[data], whole=True)):
                ax.plot(*zip(*[(u, 100 * w) for u, w in pts]), color=color, linestyle=":", alpha=0.6)
        ax.set(title=f"{data}, L{depth}: dev WER vs compute (dotted: stage 1 whole)",
               xlabel="compute (full-depth CTC steps)", ylabel="dev WER (%)")  # fmt: skip
        ax.legend(fontsize=7)
    fig.tight_layout()
    curves = folder / f"{cfg.name}_dev_wer_vs_compute.png"
    fig.savefig(curves, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([teacher["parameters"] / 1e6], [100 * teacher["wer"]], marker="*", s=150, label="teacher")
    for method in dict.fromkeys(r["method"] for r in results.values()):
        pts = [(r["parameters"] / 1e6, 100 * r["wer"]) for r in results.values() if r["method"] == method]
        ax.scatter(*zip(*pts), label=method)
    ax.set(xlabel="parameters (M)", ylabel="test WER (%)", title="test WER vs parameters")
    ax.legend(fontsize=7)
    fig.tight_layout()
    params = folder / f"{cfg.name}_wer_vs_params.png"
    fig.savefig(params, dpi=100)
    plt.close(fig)
    return [curves, params]
