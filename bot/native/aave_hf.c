/*
 * Exact Aave V3 account data (GenericLogic.calculateUserAccountData) for many users.
 *
 * The Python evaluator spends most of its time in interpreter overhead, not arithmetic;
 * this kernel runs the same integer operations on 256-bit words. Every operation the
 * contract checks for overflow is checked here too, and any row the kernel cannot prove
 * it computes exactly as the reference (overflow, stable debt, unknown reserve or e-mode
 * category, unusable index) is flagged for the Python reference instead, so a result is
 * either the reference's value or "ask the reference". Rounding: rayMul/percentMul/wadDiv
 * half up, the base-currency conversions and weighted averages truncate, as in Solidity.
 *
 * Plain C11 with unsigned __int128; loaded through ctypes (no Python headers needed).
 */
#include <stddef.h>
#include <stdint.h>

typedef unsigned __int128 u128;
typedef struct { uint64_t w[4]; } u256; /* little-endian 64-bit limbs */

/* Layouts shared with bot/adapters/aave_v3/kernel.py: all fields are uint64. */
typedef struct {
    u256 price, income, debt_index;
    uint64_t decimals, ltv, threshold, flags;
} reserve_t;
enum { R_VALID = 1, R_COUNTS = 2, R_INCOME_OK = 4, R_DEBT_OK = 8 };

typedef struct {
    u256 atoken, vdebt;
    uint64_t reserve, flags;
} entry_t;
enum { E_COLLATERAL = 1, E_VDEBT = 2, E_REFERENCE = 4 };

typedef struct {
    u256 total_collateral, total_debt, available, threshold, ltv, health_factor;
} account_t;
enum { S_OK = 0, S_REFERENCE = 1 };

static const uint64_t POW10[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};
#define WAD_U64 1000000000000000000ULL

static inline u256 from128(u128 x) {
    u256 r = {{(uint64_t)x, (uint64_t)(x >> 64), 0, 0}};
    return r;
}
static inline u256 from64(uint64_t x) {
    u256 r = {{x, 0, 0, 0}};
    return r;
}
static inline int fits128(const u256 *a) { return (a->w[2] | a->w[3]) == 0; }
static inline u128 lo128(const u256 *a) { return ((u128)a->w[1] << 64) | a->w[0]; }
static inline int is_zero(const u256 *a) { return (a->w[0] | a->w[1] | a->w[2] | a->w[3]) == 0; }

/* r = a + b; returns 1 on overflow. */
static inline int add(u256 *r, const u256 *a, const u256 *b) {
    u128 c = 0;
    for (int i = 0; i < 4; i++) {
        c += (u128)a->w[i] + b->w[i];
        r->w[i] = (uint64_t)c;
        c >>= 64;
    }
    return c != 0;
}

static inline int add64(u256 *r, const u256 *a, uint64_t b) {
    u256 t = from64(b);
    return add(r, a, &t);
}

/* r = a * b; returns 1 on overflow (the product does not fit 256 bits). */
static int mul(u256 *r, const u256 *a, const u256 *b) {
    if (fits128(a) && fits128(b) && (a->w[1] == 0 || b->w[1] == 0)) {
        /* Common case: one factor below 2**64, the other below 2**128. */
        u128 x = lo128(a), y = lo128(b);
        uint64_t small = a->w[1] == 0 ? (uint64_t)x : (uint64_t)y;
        u128 big = a->w[1] == 0 ? y : x;
        u128 lo = (u128)(uint64_t)big * small;
        u128 hi = (u128)(uint64_t)(big >> 64) * small + (lo >> 64);
        u256 out = {{(uint64_t)lo, (uint64_t)hi, (uint64_t)(hi >> 64), 0}};
        *r = out;
        return 0;
    }
    uint64_t t[8] = {0};
    for (int i = 0; i < 4; i++) {
        if (a->w[i] == 0) continue;
        u128 carry = 0;
        for (int j = 0; j < 4; j++) {
            u128 p = (u128)a->w[i] * b->w[j] + t[i + j] + carry;
            t[i + j] = (uint64_t)p;
            carry = p >> 64;
        }
        t[i + 4] = (uint64_t)carry;
    }
    for (int i = 0; i < 4; i++) r->w[i] = t[i];
    return (t[4] | t[5] | t[6] | t[7]) != 0;
}

static inline int mul64(u256 *r, const u256 *a, uint64_t b) {
    u256 t = from64(b);
    return mul(r, a, &t);
}

/* r = floor(a / d), d != 0. */
static inline void div64(u256 *r, const u256 *a, uint64_t d) {
    if (fits128(a)) {
        *r = from128(lo128(a) / d);
        return;
    }
    u128 rem = 0;
    for (int i = 3; i >= 0; i--) {
        u128 cur = (rem << 64) | a->w[i];
        r->w[i] = (uint64_t)(cur / d);
        rem = cur % d;
    }
}

/* r = floor(a / 10**e): floor(floor(x / p) / q) == floor(x / (p * q)). */
static void div_pow10(u256 *r, const u256 *a, uint64_t e) {
    *r = *a;
    if (e >= 78) { /* 10**78 > 2**256 */
        *r = from64(0);
        return;
    }
    while (e > 0) {
        uint64_t k = e > 19 ? 19 : e;
        div64(r, r, POW10[k]);
        e -= k;
    }
}

static inline int nlz32(uint32_t x) { return x ? __builtin_clz(x) : 32; }

static uint64_t addback_count; /* how often step D6 ran: lets the tests prove they reach it */

/* q = floor(u / v), v != 0: Knuth's algorithm D on 32-bit digits. */
static void divide(u256 *q, const u256 *u, const u256 *v) {
    if (fits128(u) && fits128(v)) {
        *q = from128(lo128(u) / lo128(v));
        return;
    }
    uint32_t uu[8], vv[8], qq[8] = {0}, un[9], vn[8];
    for (int i = 0; i < 4; i++) {
        uu[2 * i] = (uint32_t)u->w[i];
        uu[2 * i + 1] = (uint32_t)(u->w[i] >> 32);
        vv[2 * i] = (uint32_t)v->w[i];
        vv[2 * i + 1] = (uint32_t)(v->w[i] >> 32);
    }
    int m = 8, n = 8;
    while (m > 0 && uu[m - 1] == 0) m--;
    while (n > 0 && vv[n - 1] == 0) n--;
    if (m < n) {
        *q = from64(0);
        return;
    }
    if (n == 1) {
        uint64_t k = 0;
        for (int j = m - 1; j >= 0; j--) {
            uint64_t cur = (k << 32) | uu[j];
            qq[j] = (uint32_t)(cur / vv[0]);
            k = cur % vv[0];
        }
    } else {
        const uint64_t b = 1ULL << 32;
        int s = nlz32(vv[n - 1]);
        /* Shifting a uint64 by 32 - s (<= 32) is defined, and yields 0 when s == 0. */
        for (int i = n - 1; i > 0; i--)
            vn[i] = (vv[i] << s) | (uint32_t)((uint64_t)vv[i - 1] >> (32 - s));
        vn[0] = vv[0] << s;
        un[m] = (uint32_t)((uint64_t)uu[m - 1] >> (32 - s));
        for (int i = m - 1; i > 0; i--)
            un[i] = (uu[i] << s) | (uint32_t)((uint64_t)uu[i - 1] >> (32 - s));
        un[0] = uu[0] << s;
        for (int j = m - n; j >= 0; j--) {
            uint64_t num = ((uint64_t)un[j + n] << 32) | un[j + n - 1];
            uint64_t qhat = num / vn[n - 1];
            uint64_t rhat = num - qhat * vn[n - 1];
            while (qhat >= b || qhat * vn[n - 2] > ((rhat << 32) | un[j + n - 2])) {
                qhat--;
                rhat += vn[n - 1];
                if (rhat >= b) break;
            }
            int64_t t, k = 0;
            for (int i = 0; i < n; i++) {
                uint64_t p = qhat * vn[i];
                t = (int64_t)un[i + j] - k - (int64_t)(p & 0xFFFFFFFFULL);
                un[i + j] = (uint32_t)t;
                k = (int64_t)(p >> 32) - (t >> 32);
            }
            t = (int64_t)un[j + n] - k;
            un[j + n] = (uint32_t)t;
            qq[j] = (uint32_t)qhat;
            if (t < 0) { /* qhat was one too large: add the divisor back */
                addback_count++;
                qq[j]--;
                uint64_t c = 0;
                for (int i = 0; i < n; i++) {
                    uint64_t sum = (uint64_t)un[i + j] + vn[i] + c;
                    un[i + j] = (uint32_t)sum;
                    c = sum >> 32;
                }
                un[j + n] = (uint32_t)((uint64_t)un[j + n] + c);
            }
        }
    }
    for (int i = 0; i < 4; i++) q->w[i] = ((uint64_t)qq[2 * i + 1] << 32) | qq[2 * i];
}

/* WadRayMath.rayMul: (a * b + RAY / 2) / RAY; 1 where Solidity reverts. */
static int ray_mul(u256 *r, const u256 *a, const u256 *b) {
    static const u256 HALF_RAY = {{0x4fe8401e74000000ULL, 0x19d971eULL, 0, 0}}; /* 5e26 */
    u256 p;
    if (mul(&p, a, b) || add(&p, &p, &HALF_RAY)) return 1;
    div64(&p, &p, POW10[19]);
    div64(r, &p, POW10[8]);
    return 0;
}

/* PercentageMath.percentMul: (a * bps + 5000) / 10000. */
static int percent_mul(u256 *r, const u256 *a, uint64_t bps) {
    u256 p;
    if (mul64(&p, a, bps) || add64(&p, &p, 5000)) return 1;
    div64(r, &p, 10000);
    return 0;
}

/* WadRayMath.wadDiv: (a * WAD + b / 2) / b, b != 0. */
static int wad_div(u256 *r, const u256 *a, const u256 *b) {
    u256 p, half;
    half.w[0] = (b->w[0] >> 1) | (b->w[1] << 63);
    half.w[1] = (b->w[1] >> 1) | (b->w[2] << 63);
    half.w[2] = (b->w[2] >> 1) | (b->w[3] << 63);
    half.w[3] = b->w[3] >> 1;
    if (mul64(&p, a, WAD_U64) || add(&p, &p, &half)) return 1;
    divide(r, &p, b);
    return 0;
}

static inline int below_wad(const u256 *a) {
    return (a->w[1] | a->w[2] | a->w[3]) == 0 && a->w[0] < WAD_U64;
}

/* One row; returns S_OK with *out filled, or S_REFERENCE. */
static int account(const entry_t *e, int64_t count, const reserve_t *table, int64_t n_reserves,
                   account_t *out) {
    u256 tc = from64(0), td = from64(0), ltv_sum = from64(0), thr_sum = from64(0), x;
    int active = 0;
    for (int64_t i = 0; i < count; i++, e++) {
        if (e->flags & E_REFERENCE) return S_REFERENCE;
        int collateral = (e->flags & E_COLLATERAL) != 0, borrowing = (e->flags & E_VDEBT) != 0;
        if (!collateral && !borrowing) continue;
        active = 1;
        if (e->reserve >= (uint64_t)n_reserves) return S_REFERENCE;
        const reserve_t *r = table + e->reserve;
        if (!(r->flags & R_VALID)) return S_REFERENCE;
        if (collateral && (r->flags & R_COUNTS)) {
            if (!(r->flags & R_INCOME_OK)) return S_REFERENCE;
            if (ray_mul(&x, &e->atoken, &r->income) || mul(&x, &x, &r->price)) return S_REFERENCE;
            div_pow10(&x, &x, r->decimals);
            u256 weighted;
            if (add(&tc, &tc, &x)) return S_REFERENCE;
            if (r->ltv) {
                if (mul64(&weighted, &x, r->ltv) || add(&ltv_sum, &ltv_sum, &weighted))
                    return S_REFERENCE;
            }
            if (mul64(&weighted, &x, r->threshold) || add(&thr_sum, &thr_sum, &weighted))
                return S_REFERENCE;
        }
        if (borrowing) {
            if (!(r->flags & R_DEBT_OK)) return S_REFERENCE;
            if (ray_mul(&x, &e->vdebt, &r->debt_index) || mul(&x, &r->price, &x))
                return S_REFERENCE;
            div_pow10(&x, &x, r->decimals);
            if (add(&td, &td, &x)) return S_REFERENCE;
        }
    }
    static const u256 MAX = {{~0ULL, ~0ULL, ~0ULL, ~0ULL}};
    if (!active) {
        account_t empty = {from64(0), from64(0), from64(0), from64(0), from64(0), MAX};
        *out = empty;
        return S_OK;
    }
    u256 avg_ltv = from64(0), avg_thr = from64(0), available, weighted;
    if (!is_zero(&tc)) {
        divide(&avg_ltv, &ltv_sum, &tc);
        divide(&avg_thr, &thr_sum, &tc);
    }
    /* Weighted averages of 16-bit bps values: they fit 64 bits. */
    if (percent_mul(&available, &tc, avg_ltv.w[0])) return S_REFERENCE;
    out->health_factor = MAX;
    if (!is_zero(&td)) {
        if (percent_mul(&weighted, &tc, avg_thr.w[0])) return S_REFERENCE;
        if (wad_div(&out->health_factor, &weighted, &td)) return S_REFERENCE;
    }
    /* available - debt, floored at 0 */
    u256 diff;
    uint64_t borrow = 0;
    for (int i = 0; i < 4; i++) {
        u128 d = (u128)available.w[i] - td.w[i] - borrow;
        diff.w[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 64) & 1;
    }
    out->available = borrow ? from64(0) : diff;
    out->total_collateral = tc;
    out->total_debt = td;
    out->threshold = avg_thr;
    out->ltv = avg_ltv;
    return S_OK;
}

/*
 * Evaluate n rows. Row i's entries are entries[start[i] .. start[i] + count[i]); its e-mode
 * category emode[i] selects the reserve table slot_of[emode[i]] (a table is n_reserves
 * reserve_t indexed by reserve id; -1: unknown category, ask the reference). rows, when
 * not NULL, lists which rows to evaluate (output i is for rows[i]). Writes out[i],
 * status[i] (S_OK / S_REFERENCE) and below[i] (health factor < 1e18). Returns how many
 * rows need the reference.
 */
int64_t liqbot_aave_accounts(int64_t n, const int64_t *rows, const int64_t *start,
                             const int64_t *count, const int64_t *emode, const entry_t *entries,
                             const reserve_t *tables, int64_t n_reserves, const int64_t *slot_of,
                             int64_t n_slots, account_t *out, uint8_t *status, uint8_t *below) {
    int64_t referred = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t row = rows ? rows[i] : i;
        int64_t category = emode[row];
        int64_t slot = (category >= 0 && category < n_slots) ? slot_of[category] : -1;
        int s = slot < 0 ? S_REFERENCE
                         : account(entries + start[row], count[row], tables + slot * n_reserves,
                                   n_reserves, out + i);
        status[i] = (uint8_t)s;
        below[i] = s == S_OK && below_wad(&out[i].health_factor);
        referred += s != S_OK;
    }
    return referred;
}

/* For the tests: floor(a / b) of n pairs of 256-bit words; returns the add-back count. */
uint64_t liqbot_u256_divide(int64_t n, const u256 *a, const u256 *b, u256 *q) {
    for (int64_t i = 0; i < n; i++) divide(q + i, a + i, b + i);
    return addback_count;
}
