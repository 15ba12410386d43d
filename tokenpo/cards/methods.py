"""What a model card says about each method: one paragraph, its paper and its citation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodText:
    title: str  # the method's name as its paper writes it
    paper: str  # "Authors, year" with the venue
    url: str
    summary: str  # one paragraph, for a reader who knows DPO
    bibtex: str


DPO = MethodText(
    title="DPO",
    paper="Rafailov et al., NeurIPS 2023",
    url="https://arxiv.org/abs/2305.18290",
    summary=(
        "Direct Preference Optimization trains the policy on preference pairs without a reward model or "
        "sampling: the loss is −log σ(β·[log π/π_ref(chosen) − log π/π_ref(rejected)]), a classifier on the "
        "implicit reward β·log π/π_ref of the whole completion, where π_ref is the frozen starting model."
    ),
    bibtex="""@inproceedings{rafailov2023dpo,
  title     = {Direct Preference Optimization: Your Language Model is Secretly a Reward Model},
  author    = {Rafailov, Rafael and Sharma, Archit and Mitchell, Eric and Manning, Christopher D. and
               Ermon, Stefano and Finn, Chelsea},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2023}
}""",
)

METHODS: dict[str, MethodText] = {
    "dpo": DPO,
    "tdpo": MethodText(
        title="TDPO",
        paper="Zeng et al., ICML 2024",
        url="https://arxiv.org/abs/2404.11999",
        summary=(
            "Token-level Direct Preference Optimization keeps DPO's sequence reward margin and adds, per token, "
            "the forward KL divergence between the policy and the reference: the loss rewards a larger "
            "sequential KL on the rejected completion than on the chosen one (TDPO-2 weights it by α and stops "
            "the gradient through the chosen side), which keeps generation diverse while aligning."
        ),
        bibtex="""@inproceedings{zeng2024tdpo,
  title     = {Token-level Direct Preference Optimization},
  author    = {Zeng, Yongcheng and Liu, Guoqing and Ma, Weiyu and Yang, Ning and Zhang, Haifeng and Wang, Jun},
  booktitle = {Proceedings of the 41st International Conference on Machine Learning},
  year      = {2024}
}""",
    ),
    "sparsepo": MethodText(
        title="SparsePO",
        paper="Christopoulou et al., Findings of EMNLP 2025",
        url="https://arxiv.org/abs/2410.05102",
        summary=(
            "SparsePO weights every completion token's log-ratio by a sparse mask, one in the reward term (m_u) "
            "and one in the token-level KL term (m_d), so that only the tokens that carry the preference move "
            "the policy. The masks come from the reference model's activations, or from a small head learned "
            "with the policy on the reference's hidden states (ReLU: most tokens get exactly zero). With "
            "m_u = 1 and m_d = 0 it is DPO."
        ),
        bibtex="""@inproceedings{christopoulou2025sparsepo,
  title     = {{SparsePO}: Controlling Preference Alignment of {LLMs} via Sparse Token Masks},
  author    = {Christopoulou, Fenia and Cardenas, Ronald and Lampouras, Gerasimos and Bou-Ammar, Haitham and
               Wang, Jun},
  booktitle = {Findings of the Association for Computational Linguistics: EMNLP 2025},
  year      = {2025},
  note      = {arXiv:2410.05102}
}""",
    ),
    "tidpo": MethodText(
        title="TI-DPO",
        paper="Yang et al., ICLR 2026",
        url="https://arxiv.org/abs/2505.19653",
        summary=(
            "Token-Importance Guided DPO weights each completion token's log-ratio in the DPO margin by its "
            "importance: gradient attribution of the token to the model's output, mixed with a Gaussian prior "
            "over positions that corrects the U-shaped bias of attribution. A triplet loss on the weighted "
            "log-ratios pulls an anchor completion, sampled from the policy for the same prompt, toward the "
            "chosen completion and away from the rejected one. The authors' released code, which the default "
            "variant follows, also adds TDPO-2's token-level KL term."
        ),
        bibtex="""@inproceedings{yang2026tidpo,
  title     = {Token-Importance Guided Direct Preference Optimization},
  author    = {Yang, Ning and Lin, Hai and Liu, Yibo and Tian, Baoliang and Liu, Guoqing and Zhang, Haijun},
  booktitle = {International Conference on Learning Representations},
  year      = {2026},
  note      = {arXiv:2505.19653}
}""",
    ),
}


def method_text(name: str) -> MethodText:
    """The card's text for method ``name`` (``dpo``, ``tdpo``, ``sparsepo``, ``tidpo``)."""
    return METHODS[name]
