# ---- realcode corpus: a vendored third-party file ----
# origin:  https://github.com/karpathy/minGPT
# commit:  37baab71b9abea1b76ab957409a1cc2fbfba8a26
# path:    mingpt/__init__.py
# licence: MIT; full text and notice in benchmarks/realcode/LICENSES/minGPT.txt
# changes: none (this header only)
# ----
