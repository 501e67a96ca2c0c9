"""BERT at BERT-base width (hidden 768, 12 heads, intermediate 3072) with 2 layers, sequence 128, batch 1: the
``zoo_bert`` classifier (Hugging Face ``modeling_bert``'s structure) at a realistic width, vocabulary cut to 8192
tokens. Inputs ``input_ids`` and ``attention_mask`` (1, 128) int64."""
from __future__ import annotations

import torch

from sample_models.zoo_bert import BertConfig, BertForSequenceClassification
from sample_models.zoo_common import sequence_spec, token_batches, trained_like_weights

BERT_BASE_2L = BertConfig(vocab_size=8192, hidden_size=768, num_hidden_layers=2, num_attention_heads=12,
                          intermediate_size=3072)


def make_spec():
    torch.manual_seed(0)
    model = trained_like_weights(BertForSequenceClassification(BERT_BASE_2L), seed=91).eval()
    batches = token_batches(4, 1, 128, BERT_BASE_2L.vocab_size, seed=92, pad_token_id=0, first_token_id=101,
                            last_token_id=102)
    return sequence_spec("real_bert_base", model, batches, ("input_ids", "attention_mask"), calibration=3)
