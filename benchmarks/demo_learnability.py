"""How learnable routing is on the demo benchmark: the ROC AUC of the simulation's true P(edge competent |
visible) against the MES-rule labels, per default pair (the ceiling any router can reach from the query).

    .venv/bin/python benchmarks/demo_learnability.py [--items 3000] [--seed 0] [--mes 6]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from sklearn.metrics import roc_auc_score

from ecvl_router.data import load_rsd
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo
from ecvl_router.data.demo.truth import bayes_probabilities, load_truth
from ecvl_router.labels import competence_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mes", type=float, default=6.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        generate_demo(root, n_items=args.items, seed=args.seed)
        rsd, truth = load_rsd(root), load_truth(root)
        assert truth is not None
        print(f"demo benchmark, {args.items} items, seed {args.seed}, MES {args.mes:g}")
        for cloud, edge in DEMO_PAIRS:
            pair = rsd.pair(edge=edge, cloud=cloud)
            labels = competence_labels(pair.score_edge, pair.score_cloud, mes=args.mes)
            p = bayes_probabilities(truth, pair, mes=args.mes)
            print(f"  {cloud} / {edge}: competent share {labels.mean():.3f}, mean true p {p.mean():.3f}, "
                  f"roc_auc of the true p {roc_auc_score(labels, p):.3f}")


if __name__ == "__main__":
    main()
