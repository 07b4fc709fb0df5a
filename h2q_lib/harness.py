"""Old path of ``h2q_lib.evaluation.lm_eval_adapter``, kept for one release.

``python -m h2q_lib.harness`` and ``import h2q_lib.harness`` (which registers the ``h2q``
model with lm-evaluation-harness) keep working; new code imports the adapter's own path.
"""

from h2q_lib.evaluation.lm_eval_adapter import H2QLM, main, write_wikitext_task

__all__ = ["H2QLM", "main", "write_wikitext_task"]

if __name__ == "__main__":
    main()
