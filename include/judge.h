/* judge: the feedback LLM. Turns (context, response a, response b) into a preference
 * distribution, or one response into a 1..10 score (d-RLAIF), on any rank that holds a judge
 * model: the label stage's judge ranks, and the eval and rl stages.
 *
 * The prompt (Lee et al. 2023, section 2.1), for `mode: preference`:
 *
 *   [BOS] preamble                           the instruction (a principle drawn for the pair is
 *         [\n principle]                     added on its own line when the deck lists any)
 *         \n\n
 *         exemplar 1 .. k                    template filled with the exemplar, [cot.ending
 *                                            " " rationale "\n" when CoT is on], ending, label,
 *                                            "\n\n"
 *         template(context, first, second)   "Text - {context}\nSummary 1 - {a}\n..."
 *         ending                             "Preferred Summary="
 *
 * The next-token logits of label_1 and label_2, softmaxed over just those two, give
 * P(first is better). With position_debias the pair is judged again with the responses
 * swapped and the two distributions, mapped back to the candidates, are averaged:
 *   p_ab = P(label_1 | a first),  p_ba = P(label_2 | b first)  (both "a is better"),
 *   p    = clamp((p_ab + p_ba) / 2).
 * Chain of thought replaces the ending with cot.ending, decodes a rationale (greedy, or
 * cot.samples sampled ones whose labels are averaged), appends it, a newline and the ending,
 * and reads the label the same way.
 *
 * `mode: score` (d-RLAIF): score.preamble, score.template(context, response), score.ending;
 * the distribution over the score tokens 1..10 (renormalised over them) gives the expected
 * score E = sum_i i P(i), and the reward (E - 5.5) / 4.5 in [-1, 1]. When "10" is two tokens
 * ("1" then "0"), P(10) = P("1") P("0" | "1") and P(1) = P("1") (1 - P("0" | "1")).
 *
 * `mode: likelihood` asks the judge no question: it reads how likely the judge is to have
 * written each response, l = log P(response [EOS] | the text before {response} in
 * likelihood.template) in nats, and P(a better) = logistic((l_a - l_b) / likelihood.temperature)
 * (the evaluation-by-generation of BARTScore / GPTScore). The text before {response}, less its
 * trailing white space, is the head (tokenised with BOS, as a prompt); the rest, from that white
 * space on, is the response part (tokenised on its own, as a summary is in training). There are
 * no positions: p_ab = p_ba = p (p_ba is NaN without position_debias).
 *
 * Tokens: the whole prompt text is tokenised at once (as a model that learned from whole texts
 * expects); prefix reuse then works on tokens. The KV cache of the common prefix (everything
 * before the sample's first placeholder: preamble, principle, exemplars, the template's head)
 * is computed once per judge (and principle) and copied into the pairs' cache slots; the
 * longest common token prefix of a prompt and the cached one is what is reused. The two orders
 * of a pair share their common tokens too (up to where the responses first differ): they are
 * computed once and copied. A context too long for the model is cut (its tail) and the label
 * says so.
 *
 * Randomness (principle draws, sampled rationales) comes from streams keyed by the pair's id,
 * so a pair's label does not depend on which rank or batch judged it.
 * Not here: where pairs come from and where labels go (stage_label.c), training (judge_sft). */
#ifndef RLAIF_JUDGE_H
#define RLAIF_JUDGE_H

#include <stdint.h>

#include "config.h"
#include "err.h"
#include "model.h"
#include "tokenizer.h"

enum judge_mode { JUDGE_PREFERENCE = 0, JUDGE_SCORE = 1, JUDGE_LIKELIHOOD = 2 };

typedef struct judge_exemplar {
    char *context, *a, *b, *rationale; /* rationale "" when none */
    int label;                         /* 1 or 2 */
} judge_exemplar;

/* How the judge is prompted; strings are owned (judge_opts_free). */
typedef struct judge_opts {
    int mode; /* enum judge_mode */
    char *preamble;
    judge_exemplar *exemplars;
    int n_exemplars;
    char *template_text, *ending;
    char *label_1, *label_2;
    int position_debias;
    int cot;
    char *cot_ending;
    int cot_max_tokens;
    double cot_temperature;
    int cot_samples;
    char **principles;
    int n_principles;
    double clamp_low, clamp_high;
    char *score_preamble, *score_template, *score_ending;
    char *lik_template;     /* likelihood mode: {context} ... {response} */
    double lik_temperature; /* P(a better) = s((l_a - l_b) / lik_temperature) */
    int lik_eos;            /* the end-of-text token after the response counts */
    uint64_t seed;          /* run.seed: principle draws, sampled rationales */
    int reuse_prefix; /* 1: share prefix and pair KV caches (default); 0: every prompt in full */
} judge_opts;

/* The deck's judge.* section (reads judge.preamble_file; errors name its position). */
int judge_opts_from_config(const config *cfg, judge_opts *o, rl_err *e);
/* The paper's defaults (the deck's defaults). */
void judge_opts_default(judge_opts *o);
void judge_opts_free(judge_opts *o);
/* Every fixed text a prompt can contain (preamble, principles, exemplars, the template's and
 * endings' literal parts, label and score tokens): what a tokenizer learned for this judge must
 * cover. *texts is malloc'd, each string too (judge_texts_free). */
void judge_opts_texts(const judge_opts *o, char ***texts, int *n);
void judge_texts_free(char **texts, int n);

/* ------------------------------------------------------------------ prompts (no model needed) */

typedef struct judge_prompt judge_prompt;

/* Checks the options against the tokenizer (label tokens and score tokens must be single
 * tokens) and prepares the prompt parts. max_seq: the model's context. */
int judge_prompt_create(judge_prompt **out, const judge_opts *o, const tokenizer *tok, int max_seq,
                        rl_err *e);
void judge_prompt_free(judge_prompt *p);
const judge_opts *judge_prompt_opts(const judge_prompt *p);
/* Token id of label_1 (which = 1) or label_2 (which = 2). */
int judge_prompt_label_token(const judge_prompt *p, int which);
/* The principle drawn for pair `id` (index into opts->principles), or -1 when there are none. */
int judge_prompt_principle(const judge_prompt *p, int64_t id);

typedef struct judge_pair {
    int64_t id; /* keys the principle draw and sampled rationales */
    const char *context, *a, *b;
} judge_pair;

/* The full prompt text of a pair with a first (swap = 0) or b first (swap = 1), ending with
 * the ending (cot = 0) or cot.ending (cot = 1); *text is malloc'd. max_context_bytes >= 0
 * cuts the context to that many bytes. */
char *judge_prompt_pair_text(const judge_prompt *p, const judge_pair *pair, int swap, int cot,
                             long max_context_bytes);
/* Its tokens ([BOS] + text), cut to fit the model (the context's tail is dropped, *truncated
 * set); room tokens are kept free after it. *ids is malloc'd. */
int judge_prompt_pair_tokens(const judge_prompt *p, const judge_pair *pair, int swap, int cot,
                             int room, int **ids, int *n, int *truncated, rl_err *e);
/* Score mode: the prompt of one response. */
int judge_prompt_score_tokens(const judge_prompt *p, const char *context, const char *response,
                              int **ids, int *n, int *truncated, rl_err *e);

/* Likelihood mode: the head's tokens ([BOS] + the text before the response, context cut to fit)
 * in *head, and the response part's ([EOS] at the end with likelihood.eos) in *resp; both
 * malloc'd. The response part is never cut: one that does not fit with a one-token context is an
 * error. */
int judge_prompt_likelihood_tokens(const judge_prompt *p, const char *context, const char *response,
                                   int **head, int *n_head, int **resp, int *n_resp, int *truncated,
                                   rl_err *e);
/* Sum over the response tokens of log softmax(logits row m)[resp[m]] (rows: the logits at the
 * head's last token and at every response token but the last), in nats. */
double judge_loglik_from_logits(const float *logits, int V, const int *resp, int n_resp);

/* P(label 1) from a row of logits (V): softmax over the two label tokens only. */
double judge_pref_from_logits(const float *logits, int tok1, int tok2);

/* ------------------------------------------------------------------ judging */

typedef struct judge judge;

typedef struct judge_stats {
    long prompts;          /* prompts (orders) judged */
    long tokens_computed;  /* tokens run through the model */
    long tokens_reused;    /* tokens taken from a cached prefix instead */
    long tokens_generated; /* rationale tokens */
    long truncated;        /* prompts whose context was cut */
    double seconds;        /* wall time inside judge_label_pairs / judge_score_responses */
} judge_stats;

/* A judge on model m (not owned; any rank holding it) with tokenizer tok (not owned), able to
 * judge max_pairs pairs (or 2 * max_pairs responses) per forward pass. */
int judge_create(judge **out, const model *m, const tokenizer *tok, const judge_opts *o,
                 int max_pairs, rl_err *e);
void judge_free(judge *j);
const judge_prompt *judge_get_prompt(const judge *j);
const judge_stats *judge_get_stats(const judge *j);
void judge_reset_stats(judge *j);

typedef struct judge_label {
    double p_ab; /* P(a better) with a shown first */
    double p_ba; /* P(a better) with a shown second; NaN without position_debias */
    double p;    /* the soft label: their mean (or p_ab), clamped */
    char *rationale_ab, *rationale_ba; /* malloc'd; "" without CoT (the first sample's) */
    int principle;                     /* index drawn, -1 when none */
    int truncated;                     /* the context was cut to fit */
} judge_label;

/* Labels n pairs (any n; in batches of max_pairs). out[i] must be freed with judge_label_free. */
int judge_label_pairs(judge *j, const judge_pair *pairs, int n, judge_label *out, rl_err *e);
void judge_label_free(judge_label *l);
/* 1 when the judge prefers the same position in both orders (position bias): needs p_ba. */
int judge_same_position(const judge_label *l);

typedef struct judge_response {
    int64_t id;
    const char *context, *response;
} judge_response;

typedef struct judge_score {
    double prob[10]; /* P(score = i + 1), renormalised over the score tokens */
    double expected; /* sum_i i P(i), in [1, 10] */
    double reward;   /* (expected - 5.5) / 4.5, in [-1, 1] */
    int truncated;
} judge_score;

/* d-RLAIF: scores n responses (any n; in batches of 2 * max_pairs). */
int judge_score_responses(judge *j, const judge_response *r, int n, judge_score *out, rl_err *e);
/* The expected score from the score tokens' first-position logits (V) and, when "10" is two
 * tokens, the logits (V) after "1" (NULL otherwise): exposed for tests. */
void judge_score_from_logits(const judge_prompt *p, const float *logits_first,
                             const float *logits_after_1, judge_score *out);

#endif
