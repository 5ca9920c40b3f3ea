# ---- realcode corpus: a vendored third-party file ----
# origin:  https://github.com/pytorch/examples
# commit:  77f55b912142e11fcfdf5b530231fb9c52f181e8
# path:    word_language_model/data.py
# licence: BSD-3-Clause; full text and notice in benchmarks/realcode/LICENSES/pytorch-examples.txt
# changes (marked "# realcode:" where they are):
#   1. Wikitext-2 (a download) replaced by the docstrings of torch.nn (realcode_text): when PATH
#      has no train.txt, the text's lines are split 80/10/10 into train/valid/test and tokenized
#      exactly as a file would be
# ----
import os
from io import open
import torch

# realcode: the text corpus is not bundled; the docstrings of torch.nn's public names (they ship
# inside the installed torch package) stand in for it.
def realcode_text():
    import inspect
    import torch.nn
    docs = (inspect.getdoc(getattr(torch.nn, n)) for n in sorted(dir(torch.nn)) if not n.startswith('_'))
    return '\n'.join(d for d in docs if d)

class Dictionary(object):
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


class Corpus(object):
    def __init__(self, path):
        self.dictionary = Dictionary()
        if not os.path.exists(os.path.join(path, 'train.txt')):  # realcode: the docstring corpus
            lines = realcode_text().splitlines(keepends=True)
            a, b = int(0.8 * len(lines)), int(0.9 * len(lines))
            self.train, self.valid, self.test = (self.tokenize_lines(lines[:a]),
                                                 self.tokenize_lines(lines[a:b]), self.tokenize_lines(lines[b:]))
            return
        self.train = self.tokenize(os.path.join(path, 'train.txt'))
        self.valid = self.tokenize(os.path.join(path, 'valid.txt'))
        self.test = self.tokenize(os.path.join(path, 'test.txt'))

    def tokenize_lines(self, lines):  # realcode: tokenize() on a list of lines
        for line in lines:
            for word in line.split() + ['<eos>']:
                self.dictionary.add_word(word)
        return torch.cat([torch.tensor([self.dictionary.word2idx[w] for w in line.split() + ['<eos>']]).type(torch.int64)
                          for line in lines])

    def tokenize(self, path):
        """Tokenizes a text file."""
        assert os.path.exists(path)
        # Add words to the dictionary
        with open(path, 'r', encoding="utf8") as f:
            for line in f:
                words = line.split() + ['<eos>']
                for word in words:
                    self.dictionary.add_word(word)

        # Tokenize file content
        with open(path, 'r', encoding="utf8") as f:
            idss = []
            for line in f:
                words = line.split() + ['<eos>']
                ids = []
                for word in words:
                    ids.append(self.dictionary.word2idx[word])
                idss.append(torch.tensor(ids).type(torch.int64))
            ids = torch.cat(idss)

        return ids
