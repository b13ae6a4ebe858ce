/* Feature extraction of the hit verifier: what differs between two prompts.
 *
 * Both prompts are cut into word tokens (lower-cased, a light plural
 * stemming, numbers parsed to values, number words and currency signs
 * mapped, stop words and negations flagged), then compared: which content
 * words align and which do not (a typo of a long word still aligns),
 * whether numbers, units, question words or named things differ, whether a
 * negation or an opposite word (listed: enable / disable, import / export;
 * by form: lock / unlock, overpaid / underpaid; comparatives: cheapest /
 * expensive) appears on one side only, whether shared words come in a
 * different order (and whether around the same relation word: "miles to
 * km" / "km to miles"), plus character 3-gram overlap and the length
 * ratio. Optionally the differing words of each side are embedded (one
 * sc_embed() call for both) and their dissimilarity becomes a feature.
 * Everything is bounded (SC_VERIFY_MAX_BYTES / _TOKENS; pairwise word
 * comparisons look at most at UNALIGNED_CAP words per side) and
 * allocation-free except the diff-word embedding. Pure; any thread. */
#include "embed/verify.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/hash.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------
 * Word lists
 * ------------------------------------------------------------------- */

static const char *const stop_words[] = {
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does",
    "did", "doing", "done", "i", "me", "my", "mine", "myself", "you", "your", "yours", "we",
    "our", "ours", "us", "he", "him", "his", "she", "her", "hers", "it", "its", "they",
    "them", "their", "theirs", "this", "that", "these", "those", "there", "here", "to",
    "of", "in", "on", "at", "for", "by", "from", "with", "as", "into", "onto", "about",
    "than", "then", "so", "such", "and", "or", "but", "if", "can", "could", "would",
    "should", "will", "shall", "may", "might", "must", "have", "has", "had", "having",
    "get", "got", "what", "which", "who", "whom", "whose", "why", "how", "when", "where",
    "please", "just", "also", "very", "really", "much", "many", "any", "some", "all",
    "each", "every", "i'm", "i've", "it's", "what's", "how's", "way", "someone", "something",
    "anyone", "anything", "thing", "things", "one's", "s", "t", "ve", "re", "ll", "d", "m",
    "possible", "best", "good", "tell", "know", "want", "need", "like", "make", "use",
    "using", "work", "people", "person", "help",
};

static const char *const wh_words[] = {
    "what", "why", "how", "when", "where", "who", "whom", "whose", "which",
};

static const char *const negations[] = {
    "not", "no", "never", "cannot", "none", "nobody", "nothing", "neither", "nor",
    "without", "dont", "doesnt", "didnt", "cant", "wont", "isnt", "arent", "wasnt",
    "werent", "shouldnt", "couldnt", "wouldnt", "havent", "hasnt", "hadnt", "unable",
};

/* Opposite pairs: a word on one side only whose opposite is on the other
 * side only. Both directions are checked. */
static const char *const opposites[][2] = {
    {"enable", "disable"}, {"enabled", "disabled"}, {"import", "export"},
    {"add", "remove"}, {"add", "delete"}, {"upgrade", "downgrade"}, {"with", "without"},
    {"increase", "decrease"}, {"before", "after"}, {"open", "close"}, {"buy", "sell"},
    {"on", "off"}, {"up", "down"}, {"start", "stop"}, {"login", "logout"},
    {"in", "out"}, {"lock", "unlock"}, {"allow", "block"}, {"accept", "reject"},
    {"accept", "decline"}, {"send", "receive"}, {"sent", "received"},
    {"deposit", "withdraw"}, {"upload", "download"}, {"install", "uninstall"},
    {"subscribe", "unsubscribe"}, {"encrypt", "decrypt"}, {"connect", "disconnect"},
    {"activate", "deactivate"}, {"maximum", "minimum"}, {"max", "min"}, {"more", "less"},
    {"most", "least"}, {"best", "worst"}, {"good", "bad"}, {"cheap", "expensive"},
    {"fast", "slow"}, {"high", "low"}, {"higher", "lower"}, {"hot", "cold"},
    {"long", "short"}, {"big", "small"}, {"large", "small"}, {"old", "new"},
    {"first", "last"}, {"early", "late"}, {"win", "lose"}, {"pro", "con"},
    {"advantage", "disadvantage"}, {"love", "hate"}, {"male", "female"},
    {"man", "woman"}, {"men", "women"}, {"boy", "girl"}, {"true", "false"},
    {"yes", "no"}, {"private", "public"}, {"input", "output"}, {"push", "pull"},
    {"join", "leave"}, {"hire", "fire"}, {"borrow", "lend"}, {"positive", "negative"},
    {"inside", "outside"}, {"above", "below"}, {"internal", "external"},
    {"online", "offline"}, {"rich", "poor"}, {"easy", "hard"}, {"easy", "difficult"},
    {"success", "failure"}, {"like", "dislike"}, {"agree", "disagree"},
    {"north", "south"}, {"east", "west"}, {"left", "right"}, {"top", "bottom"},
    {"day", "night"}, {"summer", "winter"}, {"past", "future"}, {"include", "exclude"},
    {"show", "hide"}, {"mute", "unmute"}, {"follow", "unfollow"}, {"credit", "debit"},
    {"encode", "decode"}, {"compress", "decompress"}, {"zip", "unzip"},
    {"block", "unblock"}, {"freeze", "unfreeze"}, {"pause", "resume"},
    {"cancel", "renew"}, {"expand", "collapse"}, {"ascending", "descending"},
    {"incoming", "outgoing"}, {"inbound", "outbound"}, {"upstairs", "downstairs"},
    {"legal", "illegal"}, {"possible", "impossible"}, {"visible", "invisible"},
    {"valid", "invalid"}, {"safe", "unsafe"}, {"pass", "fail"}, {"parent", "child"},
    {"sender", "recipient"}, {"buyer", "seller"}, {"employer", "employee"},
    {"client", "server"}, {"read", "write"}, {"light", "dark"}, {"wet", "dry"},
    {"cheaper", "pricier"}, {"faster", "slower"}, {"bigger", "smaller"},
    {"better", "worse"}, {"older", "newer"}, {"increase", "reduce"}, {"raise", "lower"},
    {"charge", "refund"}, {"pay", "refund"}, {"attach", "detach"}, {"mount", "unmount"},
    {"merge", "split"}, {"show", "hidden"}, {"to", "from"},
};

/* Units, each with its canonical id (several spellings, one id). */
static const char *const units[][2] = {
    {"km", "km"}, {"kilometer", "km"}, {"kilometre", "km"}, {"kms", "km"},
    {"mile", "mile"}, {"mi", "mile"}, {"m", "m"}, {"meter", "m"}, {"metre", "m"},
    {"cm", "cm"}, {"centimeter", "cm"}, {"mm", "mm"}, {"ft", "ft"}, {"foot", "ft"},
    {"feet", "ft"}, {"inch", "inch"}, {"inche", "inch"}, {"yard", "yard"},
    {"kg", "kg"}, {"kilogram", "kg"}, {"kilo", "kg"}, {"g", "g"}, {"gram", "g"},
    {"lb", "lb"}, {"pound", "lb"}, {"oz", "oz"}, {"ounce", "oz"}, {"ton", "ton"},
    {"tonne", "ton"}, {"l", "l"}, {"liter", "l"}, {"litre", "l"}, {"ml", "ml"},
    {"gallon", "gallon"}, {"celsius", "celsius"}, {"centigrade", "celsius"},
    {"fahrenheit", "fahrenheit"}, {"kelvin", "kelvin"}, {"usd", "usd"},
    {"dollar", "usd"}, {"$", "usd"}, {"eur", "eur"}, {"euro", "eur"}, {"€", "eur"},
    {"gbp", "gbp"}, {"£", "gbp"}, {"inr", "inr"}, {"rupee", "inr"}, {"rs", "inr"},
    {"yen", "jpy"}, {"jpy", "jpy"}, {"yuan", "cny"}, {"percent", "percent"},
    {"%", "percent"}, {"kb", "kb"}, {"mb", "mb"}, {"gb", "gb"}, {"tb", "tb"},
    {"mbps", "mbps"}, {"gbps", "gbps"}, {"hour", "hour"}, {"hr", "hour"},
    {"minute", "minute"}, {"min", "minute"}, {"second", "second"}, {"sec", "second"},
    {"day", "day"}, {"week", "week"}, {"month", "month"}, {"year", "year"},
    {"yr", "year"}, {"mph", "mph"}, {"kmh", "kmh"}, {"kph", "kmh"}, {"watt", "watt"},
    {"kw", "kw"}, {"kwh", "kwh"}, {"volt", "volt"}, {"hz", "hz"}, {"ghz", "ghz"},
    {"calorie", "calorie"}, {"kcal", "calorie"}, {"acre", "acre"}, {"hectare", "hectare"},
};

/* Named things written in lower case as often as not: languages, places,
 * platforms, products, plans. Capitalised or all-caps words count too. */
static const char *const named_words[] = {
    "english", "french", "german", "spanish", "italian", "chinese", "japanese",
    "korean", "hindi", "arabic", "russian", "portuguese", "dutch", "urdu", "bengali",
    "tamil", "telugu", "python", "java", "javascript", "c++", "c#", "ruby", "php",
    "golang", "rust", "swift", "kotlin", "scala", "perl", "haskell", "sql", "mysql",
    "postgres", "postgresql", "mongodb", "redis", "linux", "windows", "mac", "macos",
    "ios", "android", "iphone", "ipad", "samsung", "google", "facebook", "instagram",
    "twitter", "whatsapp", "youtube", "amazon", "microsoft", "apple", "netflix",
    "quora", "uber", "paypal", "visa", "mastercard", "bitcoin", "ethereum", "india",
    "china", "usa", "us", "uk", "america", "canada", "australia", "austria", "germany",
    "france", "japan", "pakistan", "russia", "brazil", "mexico", "italy", "spain",
    "europe", "asia", "africa", "london", "paris", "delhi", "mumbai", "bangalore",
    "york", "california", "texas", "chrome", "firefox", "safari", "excel", "word",
    "powerpoint", "gmail", "outlook", "basic", "premium", "pro", "enterprise", "free",
    "gold", "silver", "platinum", "monday", "tuesday", "wednesday", "thursday",
    "friday", "saturday", "sunday", "january", "february", "march", "april", "june",
    "july", "august", "september", "october", "november", "december",
};

static const struct { const char *w; double v; } number_words[] = {
    {"zero", 0}, {"one", 1}, {"two", 2}, {"three", 3}, {"four", 4}, {"five", 5},
    {"six", 6}, {"seven", 7}, {"eight", 8}, {"nine", 9}, {"ten", 10}, {"eleven", 11},
    {"twelve", 12}, {"thirteen", 13}, {"fourteen", 14}, {"fifteen", 15},
    {"sixteen", 16}, {"seventeen", 17}, {"eighteen", 18}, {"nineteen", 19},
    {"twenty", 20}, {"thirty", 30}, {"forty", 40}, {"fifty", 50}, {"sixty", 60},
    {"seventy", 70}, {"eighty", 80}, {"ninety", 90}, {"hundred", 100},
    {"thousand", 1000}, {"million", 1e6}, {"billion", 1e9}, {"dozen", 12},
    {"half", 0.5}, {"single", 1}, {"double", 2}, {"triple", 3}, {"second", 2},
    {"third", 3}, {"fourth", 4}, {"fifth", 5}, {"tenth", 10},
};

/* ---------------------------------------------------------------------
 * Word lookup: a small open-addressing table of word hashes built once.
 * ------------------------------------------------------------------- */

enum {
    W_STOP = 1 << 0,
    W_WH = 1 << 1,
    W_NEG = 1 << 2,
    W_UNIT = 1 << 3,
    W_NAMED = 1 << 4,
    W_NUMWORD = 1 << 5,
    W_OPP = 1 << 6,
};

#define LEX_SLOTS 2048
typedef struct lex_entry {
    uint64_t h;          /* 0 = empty */
    uint16_t flags;
    int16_t opp[4];      /* indexes of opposite words' entries, -1 = none */
    uint64_t unit;       /* canonical unit hash */
    double num;
} lex_entry;

static lex_entry lex[LEX_SLOTS];
static int lex_ready;

static uint64_t whash(const char *s, size_t n)
{
    uint64_t h = sc_hash64(s, n, 0x5eed);
    return h ? h : 1;
}

static int lex_slot(uint64_t h, int create)
{
    size_t i = (size_t)(h & (LEX_SLOTS - 1));
    for (;;) {
        if (lex[i].h == h) return (int)i;
        if (lex[i].h == 0) {
            if (!create) return -1;
            lex[i].h = h;
            for (int k = 0; k < 4; k++) lex[i].opp[k] = -1;
            return (int)i;
        }
        i = (i + 1) & (LEX_SLOTS - 1);
    }
}

static int lex_add(const char *w, uint16_t flags)
{
    /* Words are looked up without apostrophes ("i've" as "ive"). */
    char k[32];
    size_t n = 0;
    for (; *w && n < sizeof k - 1; w++)
        if (*w != '\'') k[n++] = *w;
    int s = lex_slot(whash(k, n), 1);
    lex[s].flags |= flags;
    return s;
}

static void lex_link(int a, int b)
{
    for (int k = 0; k < 4; k++)
        if (lex[a].opp[k] == b) return;
    for (int k = 0; k < 4; k++)
        if (lex[a].opp[k] < 0) {
            lex[a].opp[k] = (int16_t)b;
            return;
        }
}

static void lex_build(void)
{
    for (size_t i = 0; i < SC_COUNTOF(stop_words); i++) lex_add(stop_words[i], W_STOP);
    for (size_t i = 0; i < SC_COUNTOF(wh_words); i++) lex_add(wh_words[i], W_WH | W_STOP);
    for (size_t i = 0; i < SC_COUNTOF(negations); i++) lex_add(negations[i], W_NEG);
    for (size_t i = 0; i < SC_COUNTOF(named_words); i++) lex_add(named_words[i], W_NAMED);
    for (size_t i = 0; i < SC_COUNTOF(units); i++) {
        int s = lex_add(units[i][0], W_UNIT);
        lex[s].unit = whash(units[i][1], strlen(units[i][1]));
    }
    for (size_t i = 0; i < SC_COUNTOF(number_words); i++) {
        int s = lex_add(number_words[i].w, W_NUMWORD);
        lex[s].num = number_words[i].v;
    }
    for (size_t i = 0; i < SC_COUNTOF(opposites); i++) {
        int a = lex_add(opposites[i][0], W_OPP), b = lex_add(opposites[i][1], W_OPP);
        lex_link(a, b);
        lex_link(b, a);
    }
}

/* Built at load time so that any thread may read it without locking. */
__attribute__((constructor)) static void lex_init(void)
{
    if (!lex_ready) {
        lex_build();
        lex_ready = 1;
    }
}

static const lex_entry *lex_find(uint64_t h)
{
    int s = lex_slot(h, 0);
    return s < 0 ? NULL : &lex[s];
}

/* ---------------------------------------------------------------------
 * Tokens
 * ------------------------------------------------------------------- */

enum {
    T_CONTENT = 1 << 0,   /* not a stop word, negation or number */
    T_NUM = 1 << 1,
    T_NAMED = 1 << 2,
    T_NEG = 1 << 3,
    T_WH = 1 << 4,
    T_UNIT = 1 << 5,
    T_WEAKNUM = 1 << 6,   /* "one", "second", "single", "double": often not a quantity */
};

#define TOK_TEXT 24
typedef struct token {
    uint64_t h;           /* hash of the stem */
    uint64_t unit;        /* canonical unit hash, if T_UNIT */
    double num;           /* value, if T_NUM */
    const lex_entry *lx;  /* NULL when not in the lexicon */
    const lex_entry *olx; /* entry with opposites: lx, or the base of a
                             comparative/superlative ("cheapest" -> cheap) */
    uint16_t flags;
    uint8_t len;          /* bytes in text */
    char text[TOK_TEXT];  /* lower-cased form, for the diff-word embedding */
} token;

typedef struct tokens {
    token t[SC_VERIFY_MAX_TOKENS];
    int n;
    int nchars;           /* normalised length in bytes */
} tokens;

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

/* The lexicon entry with opposites of the base of a comparative or
 * superlative ("cheapest" -> cheap, "earlier" -> early, "later" -> late,
 * "bigger" -> big), or NULL. Only these adjectives: stripping "-er" from
 * any word would read "offer" as off and "closer" as close. */
static const lex_entry *comparative_base(const char *w, size_t n)
{
    static const char *const adj[] = {
        "early", "late", "cheap", "high", "low", "fast", "slow", "big", "small", "large",
        "long", "short", "old", "new", "hot", "cold", "easy", "hard", "rich", "poor",
        "light", "dark", "wet", "dry", "safe", "good", "bad",
    };
    size_t cut = n > 5 && !memcmp(w + n - 3, "est", 3) ? 3 : n > 4 && !memcmp(w + n - 2, "er", 2) ? 2 : 0;
    if (!cut || n > 24) return NULL;
    char b[32];
    size_t k = n - cut;
    memcpy(b, w, k);
    if (b[k - 1] == 'i') b[k - 1] = 'y';
    size_t cand[3] = {k, k + 1, k > 3 && b[k - 1] == b[k - 2] ? k - 1 : k};
    b[k] = 'e';                       /* "lat" + e; cand[1] reads it */
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < SC_COUNTOF(adj); i++)
            if (strlen(adj[i]) == cand[c] && !memcmp(adj[i], b, cand[c])) {
                const lex_entry *lx = lex_find(whash(b, cand[c]));
                return lx && (lx->flags & W_OPP) ? lx : NULL;
            }
    return NULL;
}

static void push_token(tokens *ts, const char *w, size_t n, int capital, int sentence_start)
{
    if (ts->n >= SC_VERIFY_MAX_TOKENS || n == 0) return;
    token *t = &ts->t[ts->n];
    memset(t, 0, sizeof *t);
    char low[64], apos[64];
    if (n > sizeof low - 1) n = sizeof low - 1;
    if (memmem(w, n, "\xE2\x80\x99", 3)) {
        /* A typographic apostrophe (U+2019: "can’t", "I’m") is an apostrophe. */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (i + 2 < n && !memcmp(w + i, "\xE2\x80\x99", 3)) {
                apos[m++] = '\'';
                i += 2;
            } else {
                apos[m++] = w[i];
            }
        }
        w = apos;
        n = m;
    }
    int all_caps = n >= 2, upper = 0, digit0 = w[0] >= '0' && w[0] <= '9';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w[i];
        if (c >= 'a' && c <= 'z') all_caps = 0;
        if (c >= 'A' && c <= 'Z') upper = 1;
        low[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    low[n] = '\0';
    all_caps = all_caps && upper;
    /* Contractions: "don't" -> "dont" for the negation lookup. */
    size_t m = 0;
    int nt = n > 3 && low[n - 1] == 't' && low[n - 2] == '\'' && low[n - 3] == 'n';
    for (size_t i = 0; i < n; i++)
        if (low[i] != '\'') low[m++] = low[i];
    low[m] = '\0';
    if (m == 0) return;
    if (m < 2) all_caps = 0;          /* "I'" is the pronoun, not a name */
    if (digit0) {
        /* A number, maybe with a unit glued to it ("5km", "14th"). */
        char num[64];
        size_t k = 0, i = 0;
        for (; i < m && k < sizeof num - 1; i++) {
            char c = low[i];
            if ((c >= '0' && c <= '9') || c == '.') num[k++] = c;
            else if (c == ',') continue;
            else break;
        }
        num[k] = '\0';
        t->num = strtod(num, NULL);
        t->flags |= T_NUM;
        char canon[40];
        int cl = snprintf(canon, sizeof canon, "#%.6g", t->num);
        t->h = whash(canon, (size_t)cl);
        if (i < m && ts->n + 1 < SC_VERIFY_MAX_TOKENS) {
            /* The suffix becomes its own token when it is a unit. */
            const lex_entry *ux = lex_find(whash(low + i, m - i));
            if (ux && (ux->flags & W_UNIT)) {
                t->len = (uint8_t)(m < TOK_TEXT - 1 ? m : TOK_TEXT - 1);
                memcpy(t->text, low, t->len);
                ts->n++;
                push_token(ts, low + i, m - i, 0, 0);
                return;
            }
        }
    } else {
        size_t sl = m;
        /* Light stemming: plural -s, possessive. */
        if (sl > 3 && low[sl - 1] == 's' && low[sl - 2] != 's' && low[sl - 2] != 'u' &&
            low[sl - 2] != 'i')
            sl--;
        const lex_entry *lx = lex_find(whash(low, m));
        if (!lx && sl != m) lx = lex_find(whash(low, sl));
        t->lx = lx;
        t->h = whash(low, sl);
        if (lx) {
            if (lx->flags & W_NUMWORD) {
                t->flags |= T_NUM;
                if (!strcmp(low, "one") || !strcmp(low, "second") || !strcmp(low, "single") ||
                    !strcmp(low, "double"))
                    t->flags |= T_WEAKNUM;
                t->num = lx->num;
                char canon[40];
                int cl = snprintf(canon, sizeof canon, "#%.6g", t->num);
                t->h = whash(canon, (size_t)cl);
            }
            if (lx->flags & W_NEG) t->flags |= T_NEG;
            if (lx->flags & W_WH) t->flags |= T_WH;
            if (lx->flags & W_NAMED) t->flags |= T_NAMED;
            if (lx->flags & W_UNIT) {
                t->flags |= T_UNIT;
                t->unit = lx->unit;
            }
        }
        if (nt && !(lx && (lx->flags & W_STOP)))
            t->flags |= T_NEG;      /* don't, isn't, shouldn't (not "agent", "account") */
        if ((capital && !sentence_start) || all_caps)
            if (!(low[0] == 'i' && (m == 1 || w[1] == '\''))) t->flags |= T_NAMED; /* I, I'm, I've */
        if (lx && (lx->flags & W_OPP)) t->olx = lx;
        else if (!lx) t->olx = comparative_base(low, m);
        /* "IT", "US": an all-caps stop word is a name, not a stop word. */
        if (!(t->flags & (T_NEG | T_NUM)) && (!(lx && (lx->flags & W_STOP)) || all_caps))
            t->flags |= T_CONTENT;
    }
    t->len = (uint8_t)(m < TOK_TEXT - 1 ? m : TOK_TEXT - 1);
    memcpy(t->text, low, t->len);
    ts->n++;
}

static void tokenize(tokens *ts, const char *s, size_t n)
{
    ts->n = 0;
    ts->nchars = 0;
    if (n > SC_VERIFY_MAX_BYTES) n = SC_VERIFY_MAX_BYTES;
    int sentence_start = 1;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (is_word_byte(c)) {
            size_t j = i;
            while (j < n) {
                unsigned char d = (unsigned char)s[j];
                if (is_word_byte(d)) { j++; continue; }
                /* Keep "don't", "3.5", "1,000" and "c++" together. */
                if ((d == '\'' || d == '.' || d == ',') && j + 1 < n &&
                    is_word_byte((unsigned char)s[j + 1]) &&
                    (d == '\'' || (s[j - 1] >= '0' && s[j - 1] <= '9' && s[j + 1] >= '0' &&
                                   s[j + 1] <= '9'))) {
                    j += 2;
                    continue;
                }
                if ((d == '+' || d == '#') && (j + 1 >= n || !is_word_byte((unsigned char)s[j + 1]))) {
                    j++;
                    while (j < n && s[j] == '+') j++;
                    break;
                }
                break;
            }
            /* Possessive 's is dropped. */
            size_t e = j;
            if (e - i > 2 && s[e - 2] == '\'' && (s[e - 1] == 's' || s[e - 1] == 'S')) e -= 2;
            push_token(ts, s + i, e - i, c >= 'A' && c <= 'Z', sentence_start);
            ts->nchars += (int)(e - i) + 1;
            sentence_start = 0;
            i = j;
            continue;
        }
        if (c == '$' || c == '%') {
            push_token(ts, (const char *)&s[i], 1, 0, 0);
        } else if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x82 &&
                   (unsigned char)s[i + 2] == 0xAC) {
            push_token(ts, s + i, 3, 0, 0);   /* euro sign */
            i += 3;
            continue;
        } else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xA3) {
            push_token(ts, s + i, 2, 0, 0);   /* pound sign */
            i += 2;
            continue;
        } else if (c == '.' || c == '?' || c == '!' || c == ':' || c == ';' || c == '\n') {
            sentence_start = 1;
        }
        i++;
    }
}

/* The '$', '%' and currency tokens are units, not words. */
static void fix_symbol_tokens(tokens *ts)
{
    for (int i = 0; i < ts->n; i++) {
        token *t = &ts->t[i];
        if (t->lx && (t->lx->flags & W_UNIT) && !(t->flags & T_UNIT)) {
            t->flags |= T_UNIT;
            t->unit = t->lx->unit;
        }
        if ((t->flags & T_UNIT) && t->len <= 3 && !(t->text[0] >= 'a' && t->text[0] <= 'z'))
            t->flags &= (uint16_t)~T_CONTENT;
    }
}

/* ---------------------------------------------------------------------
 * Comparison
 * ------------------------------------------------------------------- */

/* Index of the first token of ts with hash h and every bit of flag set,
 * or -1. */
static int find_hash_flag(const tokens *ts, uint64_t h, uint16_t flag)
{
    for (int i = 0; i < ts->n; i++)
        if (ts->t[i].h == h && (ts->t[i].flags & flag) == flag) return i;
    return -1;
}

static int find_hash(const tokens *ts, uint64_t h) { return find_hash_flag(ts, h, 0); }

static int seen_before(const tokens *ts, int i)
{
    for (int k = 0; k < i; k++)
        if (ts->t[k].h == ts->t[i].h) return 1;
    return 0;
}

typedef struct side_stats {
    int content;        /* unique content stems */
    int all;            /* unique stems */
    int only_content;   /* unique content stems absent from the other side */
    int only_all;
    int only_named;
    int nums;           /* numbers, weak ones ("one", "second") included */
    int strong_nums;    /* numbers that are surely quantities */
    int units;
    int neg;
    int wh;
} side_stats;

/* Content words are counted and matched among content words only, so the
 * shared count is the same from both sides (an all-caps "IT" is a name,
 * "it" a stop word: they do not align) and the Jaccards stay in [0, 1]. */
static void side(const tokens *x, const tokens *y, side_stats *st)
{
    memset(st, 0, sizeof *st);
    for (int i = 0; i < x->n; i++) {
        const token *t = &x->t[i];
        if (t->flags & T_NEG) st->neg++;
        if (t->flags & T_NUM) st->nums++;
        if ((t->flags & T_NUM) && !(t->flags & T_WEAKNUM)) st->strong_nums++;
        if (t->flags & T_UNIT) st->units++;
        if (t->flags & T_WH) st->wh++;
        if ((t->flags & T_CONTENT) && find_hash_flag(x, t->h, T_CONTENT) == i) {
            st->content++;
            if (find_hash_flag(y, t->h, T_CONTENT) < 0) {
                st->only_content++;
                if (t->flags & T_NAMED) st->only_named++;
            }
        }
        if (seen_before(x, i)) continue;
        st->all++;
        if (find_hash(y, t->h) < 0) st->only_all++;
    }
}

/* Damerau-Levenshtein distance of a and b is at most 1. */
static int within_one_edit(const char *a, size_t la, const char *b, size_t lb)
{
    if (la > lb) return within_one_edit(b, lb, a, la);
    if (lb - la > 1) return 0;
    size_t i = 0;
    while (i < la && a[i] == b[i]) i++;
    if (la == lb) {
        if (i == la) return 1;
        if (!memcmp(a + i + 1, b + i + 1, la - i - 1)) return 1;                /* substitution */
        return i + 1 < la && a[i] == b[i + 1] && a[i + 1] == b[i] &&
               !memcmp(a + i + 2, b + i + 2, la - i - 2);                       /* transposition */
    }
    return !memcmp(a + i, b + i + 1, la - i);                                   /* insertion */
}

/* Indexes of x's content words (first occurrences) absent from y, at
 * most cap of them: what the pairwise comparisons below look at, so they
 * stay O(cap^2) whatever the prompts' length. */
#define UNALIGNED_CAP (2 * SC_VERIFY_MAX_DIFF_WORDS)
static int unaligned(const tokens *x, const tokens *y, int idx[UNALIGNED_CAP])
{
    int n = 0;
    for (int i = 0; i < x->n && n < UNALIGNED_CAP; i++) {
        const token *t = &x->t[i];
        if ((t->flags & T_CONTENT) && !seen_before(x, i) && find_hash(y, t->h) < 0) idx[n++] = i;
    }
    return n;
}

/* A word a typo may have produced: long enough for one edit to be a
 * slip rather than another word, no digit ("python2" / "python3"), not a
 * name or unit, and not cut to the token's text size (its tail is
 * unknown). */
static int typo_candidate(const token *t)
{
    if (t->len < 6 || t->len >= TOK_TEXT - 1 || (t->flags & (T_NUM | T_NAMED | T_UNIT)))
        return 0;
    for (int i = 0; i < t->len; i++)
        if (t->text[i] >= '0' && t->text[i] <= '9') return 0;
    return 1;
}

/* Typos and spelling variants ("tranfer" / "transfer", "recieve" /
 * "receive"): an unaligned word of x within one edit of an unaligned word
 * of y (both typo candidates) takes that word's hash, so they align. */
static void align_typos(tokens *x, const tokens *y)
{
    int ix[UNALIGNED_CAP], iy[UNALIGNED_CAP];
    int nx = unaligned(x, y, ix), ny = unaligned(y, x, iy);
    int used[UNALIGNED_CAP] = {0};
    for (int a = 0; a < nx; a++) {
        token *t = &x->t[ix[a]];
        if (!typo_candidate(t)) continue;
        for (int b = 0; b < ny; b++) {
            const token *u = &y->t[iy[b]];
            if (used[b] || !typo_candidate(u) || ((t->lx || t->olx) && (u->lx || u->olx)) ||
                !within_one_edit(t->text, t->len, u->text, u->len))
                continue;           /* two listed words are two words: unlock / unblock */
            uint64_t old = t->h;
            for (int k = 0; k < x->n; k++)
                if (x->t[k].h == old) x->t[k].h = u->h;
            used[b] = 1;
            break;
        }
    }
}

/* Does every value/unit of x appear in y (by mask bit)? */
static int subset_by(const tokens *x, const tokens *y, uint16_t flag, int by_unit)
{
    for (int i = 0; i < x->n; i++) {
        const token *t = &x->t[i];
        if (!(t->flags & flag)) continue;
        int found = 0;
        for (int j = 0; j < y->n && !found; j++) {
            const token *u = &y->t[j];
            if (!(u->flags & flag)) continue;
            found = by_unit ? u->unit == t->unit : u->num == t->num;
        }
        if (!found) return 0;
    }
    return 1;
}

static int wh_set_differs(const tokens *x, const tokens *y)
{
    for (int i = 0; i < x->n; i++)
        if ((x->t[i].flags & T_WH) && find_hash(y, x->t[i].h) < 0) return 1;
    return 0;
}

/* Index of the first token of ts whose word, or the adjective it
 * compares ("cheapest" -> cheap), has hash h; or -1. */
static int find_opp(const tokens *ts, uint64_t h)
{
    for (int i = 0; i < ts->n; i++)
        if (ts->t[i].h == h || (ts->t[i].olx && ts->t[i].olx->h == h)) return i;
    return -1;
}

/* Opposites by form: "unlock"/"lock", "disallow"/"allow", "overpaid"/
 * "underpaid", "inbound"/"outbound", "import"/"export", "upload"/
 * "download", "pre-"/"post-". a and b are lower-case words. */
static int morph_opposite(const char *a, size_t la, const char *b, size_t lb)
{
    /* Not in-/im-/de-: inform/form, import/port, detail/tail. */
    static const char *const neg_prefix[] = {"un", "dis", "non", "mis"};
    static const char *const pairs[][2] = {
        {"over", "under"}, {"up", "down"}, {"in", "out"}, {"im", "ex"}, {"in", "ex"},
        {"pre", "post"}, {"max", "min"}, {"in", "de"}, {"en", "dis"},
    };
    for (int swap = 0; swap < 2; swap++) {
        const char *p = swap ? b : a, *q = swap ? a : b;
        size_t lp = swap ? lb : la, lq = swap ? la : lb;
        for (size_t i = 0; i < SC_COUNTOF(neg_prefix); i++) {
            size_t k = strlen(neg_prefix[i]);
            if (lq >= 5 && lp == lq + k && !memcmp(p, neg_prefix[i], k) && !memcmp(p + k, q, lq)) return 1;
        }
        for (size_t i = 0; i < SC_COUNTOF(pairs); i++) {
            size_t k1 = strlen(pairs[i][0]), k2 = strlen(pairs[i][1]);
            if (lp > k1 + 2 && lq > k2 + 2 && lp - k1 == lq - k2 && !memcmp(p, pairs[i][0], k1) &&
                !memcmp(q, pairs[i][1], k2) && !memcmp(p + k1, q + k2, lp - k1))
                return 1;
        }
    }
    return 0;
}

/* A word of x absent from y whose listed opposite is in y and absent
 * from x. */
static int has_opposite(const tokens *x, const tokens *y)
{
    for (int i = 0; i < x->n; i++) {
        const token *t = &x->t[i];
        const lex_entry *lx = t->olx;
        if (!lx || find_hash(y, t->h) >= 0) continue;
        for (int k = 0; k < 4 && lx->opp[k] >= 0; k++) {
            uint64_t oh = lex[lx->opp[k]].h;
            if (find_opp(y, oh) >= 0 && find_opp(x, oh) < 0) return 1;
        }
    }
    return 0;
}

/* An unaligned word of x opposite by form to an unaligned word of y
 * (morph_opposite is symmetric, so one call covers both directions). */
static int has_form_opposite(const tokens *x, const tokens *y)
{
    int ix[UNALIGNED_CAP], iy[UNALIGNED_CAP];
    int nx = unaligned(x, y, ix), ny = unaligned(y, x, iy);
    for (int a = 0; a < nx; a++) {
        const token *t = &x->t[ix[a]];
        if (t->flags & (T_NUM | T_NAMED)) continue;
        for (int b = 0; b < ny; b++) {
            const token *u = &y->t[iy[b]];
            if (!(u->flags & (T_NUM | T_NAMED)) && morph_opposite(t->text, t->len, u->text, u->len))
                return 1;
        }
    }
    return 0;
}

static int is_relation(const token *t)
{
    static const char *const rel[] = {"to", "from", "for", "into", "than", "vs", "versus",
                                      "over", "instead", "per", "in", "on", "with", "by", "of"};
    for (size_t i = 0; i < SC_COUNTOF(rel); i++)
        if (t->len == strlen(rel[i]) && !memcmp(t->text, rel[i], t->len)) return 1;
    return 0;
}

/* Is the same relation word strictly between positions a < b of x and
 * c < d of y? */
static int same_relation_between(const tokens *x, int a, int b, const tokens *y, int c, int d)
{
    for (int i = a + 1; i < b; i++) {
        if (!is_relation(&x->t[i])) continue;
        for (int j = c + 1; j < d; j++)
            if (y->t[j].h == x->t[i].h) return 1;
    }
    return 0;
}

/* Shared content words (or numbers) in the opposite order. rel = 0: any
 * such pair, except two words adjacent on both sides ("car rental" /
 * "rental car" rewords one compound). rel = 1: only pairs with the same
 * relation word between them on both sides ("miles to km" / "km to
 * miles", "fries for a salad" / "salad for fries"). */
static double swapped(const tokens *x, const tokens *y, int rel)
{
    int pos[SC_VERIFY_MAX_TOKENS], xpos[SC_VERIFY_MAX_TOKENS], np = 0;
    for (int i = 0; i < x->n; i++) {
        const token *t = &x->t[i];
        if (!(t->flags & (T_CONTENT | T_NUM)) || seen_before(x, i)) continue;
        int j = find_hash(y, t->h);
        if (j < 0) continue;
        xpos[np] = i;
        pos[np++] = j;
    }
    for (int i = 0; i < np; i++)
        for (int k = i + 1; k < np; k++) {
            if (pos[k] > pos[i]) continue;
            if (rel ? same_relation_between(x, xpos[i], xpos[k], y, pos[k], pos[i])
                    : !(xpos[k] - xpos[i] == 1 && pos[i] - pos[k] == 1))
                return 1;
        }
    return 0;
}

/* Character 3-grams of the lower-cased alphanumeric text. */
#define C3_MAX 512
static int c3_grams(const char *s, size_t n, uint32_t *out)
{
    char norm[C3_MAX + 2];
    size_t m = 0;
    int space = 1;
    for (size_t i = 0; i < n && m < C3_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_word_byte(c)) {
            norm[m++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
            space = 0;
        } else if (!space) {
            norm[m++] = ' ';
            space = 1;
        }
    }
    int k = 0;
    for (size_t i = 0; i + 3 <= m; i++) {
        uint32_t h = (uint32_t)(unsigned char)norm[i] * 16777619u;
        h = (h ^ (unsigned char)norm[i + 1]) * 16777619u;
        h = (h ^ (unsigned char)norm[i + 2]) * 16777619u;
        out[k++] = h;
    }
    return k;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int uniq(uint32_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_u32);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || v[m - 1] != v[i]) v[m++] = v[i];
    return m;
}

static double c3_jaccard(const char *a, size_t alen, const char *b, size_t blen)
{
    uint32_t ga[C3_MAX], gb[C3_MAX];
    int na = uniq(ga, c3_grams(a, alen, ga)), nb = uniq(gb, c3_grams(b, blen, gb));
    if (na + nb == 0) return 1;
    int i = 0, j = 0, inter = 0;
    while (i < na && j < nb) {
        if (ga[i] == gb[j]) { inter++; i++; j++; }
        else if (ga[i] < gb[j]) i++;
        else j++;
    }
    return (double)inter / (na + nb - inter);
}

/* The differing content words of x, space separated, into buf. */
static size_t diff_text(const tokens *x, const tokens *y, char *buf, size_t cap)
{
    size_t n = 0;
    int words = 0;
    for (int i = 0; i < x->n && words < SC_VERIFY_MAX_DIFF_WORDS; i++) {
        const token *t = &x->t[i];
        if (!(t->flags & (T_CONTENT | T_NUM)) || seen_before(x, i) || find_hash(y, t->h) >= 0)
            continue;
        if (n + t->len + 2 > cap) break;
        if (n) buf[n++] = ' ';
        memcpy(buf + n, t->text, t->len);
        n += t->len;
        words++;
    }
    buf[n] = '\0';
    return n;
}

/* ---------------------------------------------------------------------
 * The feature vector
 * ------------------------------------------------------------------- */

static const char *const feature_names[] = {
#define SC_VF_NAME_(e, n) n,
    SC_VERIFY_FEATURES(SC_VF_NAME_)
#undef SC_VF_NAME_
};

const char *sc_verify_feature_name(int i)
{
    return i >= 0 && i < SC_VF_COUNT ? feature_names[i] : "?";
}

static double diff_dissim(const tokens *ta, const tokens *tb, sc_embedder *emb)
{
    char da[SC_VERIFY_MAX_DIFF_WORDS * TOK_TEXT + 8], db[sizeof da];
    size_t la = diff_text(ta, tb, da, sizeof da), lb = diff_text(tb, ta, db, sizeof db);
    if (la == 0 || lb == 0) return 0;
    uint32_t dim = sc_embedder_dim(emb);
    float *v = sc_malloc(2 * (size_t)dim * sizeof *v);
    const char *texts[2] = {da, db};
    size_t lens[2] = {la, lb};
    double r = 0;
    if (sc_embed(emb, texts, lens, 2, v) == 0) {
        double dot = 0;
        for (uint32_t i = 0; i < dim; i++) dot += (double)v[i] * v[dim + i];
        r = 1 - dot;
        if (r < 0) r = 0;
    }
    free(v);
    return r;
}

int sc_verify_features(const char *a, size_t alen, const char *b, size_t blen, float cosine,
                       sc_embedder *emb, float out[SC_VF_COUNT])
{
    if ((!a && alen) || (!b && blen) || !out) return SC_EINVAL;
    lex_init();
    tokens *ta = sc_malloc(2 * sizeof *ta), *tb = ta + 1;
    tokenize(ta, a, alen);
    tokenize(tb, b, blen);
    fix_symbol_tokens(ta);
    fix_symbol_tokens(tb);
    align_typos(ta, tb);
    side_stats sa, sb;
    side(ta, tb, &sa);
    side(tb, ta, &sb);

    double x[SC_VF_COUNT] = {0};
    double c = cosine;
    x[SC_VF_COS] = c;
    x[SC_VF_COS_SQ] = c * c;
    int cu = sa.content + sb.content - (sa.content - sa.only_content);  /* union */
    x[SC_VF_WORD_JACC] = cu ? (double)(sa.content - sa.only_content) / cu : 1;
    int au = sa.all + sb.all - (sa.all - sa.only_all);
    x[SC_VF_ALL_JACC] = au ? (double)(sa.all - sa.only_all) / au : 1;
    int diff = sa.only_content + sb.only_content;
    x[SC_VF_DIFF_LOG] = log1p((double)diff);
    x[SC_VF_DIFF_FRAC] = (sa.content + sb.content) ? (double)diff / (sa.content + sb.content) : 0;
    x[SC_VF_SUBST] = sa.only_content > 0 && sb.only_content > 0;
    if (emb && x[SC_VF_SUBST]) x[SC_VF_DIFF_DISSIM] = diff_dissim(ta, tb, emb);
    if (sa.nums && sb.nums)
        x[SC_VF_NUM_MISMATCH] = !(subset_by(ta, tb, T_NUM, 0) && subset_by(tb, ta, T_NUM, 0));
    x[SC_VF_NUM_ONESIDED] = (sa.strong_nums > 0) != (sb.strong_nums > 0);
    if (sa.units && sb.units)
        x[SC_VF_UNIT_MISMATCH] = !(subset_by(ta, tb, T_UNIT, 1) && subset_by(tb, ta, T_UNIT, 1));
    x[SC_VF_NEG_MISMATCH] = (sa.neg & 1) != (sb.neg & 1);
    x[SC_VF_OPPOSITE] = has_opposite(ta, tb) || has_opposite(tb, ta) || has_form_opposite(ta, tb);
    x[SC_VF_SWAP] = swapped(ta, tb, 0);
    x[SC_VF_SWAP_REL] = swapped(ta, tb, 1);
    x[SC_VF_NAME_MISMATCH] = sa.only_named > 0 && sb.only_named > 0;
    x[SC_VF_NAME_ONESIDED] = (sa.only_named > 0) != (sb.only_named > 0);
    x[SC_VF_WH_MISMATCH] = sa.wh && sb.wh && (wh_set_differs(ta, tb) || wh_set_differs(tb, ta));
    x[SC_VF_CHAR3_JACC] = c3_jaccard(a, alen, b, blen);
    int la = ta->nchars, lb = tb->nchars;
    x[SC_VF_LEN_RATIO] = (la || lb) ? (double)(la < lb ? la : lb) / (la > lb ? la : lb) : 1;
    x[SC_VF_COS_X_DIFF] = c * x[SC_VF_DIFF_FRAC];
    for (int i = 0; i < SC_VF_COUNT; i++) out[i] = (float)x[i];
    free(ta);
    return 0;
}

const char *sc_verify_opposite_of(const char *word)
{
    for (size_t i = 0; i < SC_COUNTOF(opposites); i++) {
        if (strcmp(opposites[i][0], word) == 0) return opposites[i][1];
        if (strcmp(opposites[i][1], word) == 0) return opposites[i][0];
    }
    return NULL;
}

const char *sc_verify_named_word(size_t i)
{
    return i < SC_COUNTOF(named_words) ? named_words[i] : NULL;
}

double sc_verify_model_score(const sc_verify_model *m, const float x[SC_VF_COUNT])
{
    double z = m->bias;
    for (int i = 0; i < SC_VF_COUNT; i++) z += m->w[i] * x[i];
    for (int t = 0; t < m->ntrees; t++) {
        const sc_verify_tree *tr = &m->trees[t];
        int k = 0;
        for (int d = 0; d < 3; d++) k = 2 * k + 1 + (x[tr->feat[k]] > tr->thr[k]);
        z += tr->leaf[k - 7];
    }
    if (z > 40) return 1;
    if (z < -40) return 0;
    return 1 / (1 + exp(-z));
}
