/*
 * Task options and owned values: fut_spawn_with and the continuations'
 * _with forms (name, value and argument destructors, argument copy),
 * fut_take, fut_promise_resolve_with, and values passed on unchanged.
 *
 * Every value here is a `thing`, counted when made and when freed: each
 * test ends with as many freed as made, and a thing freed twice, or read
 * after it was freed, fails its magic check (and ASan's, in that build).
 */
#include "helpers.h"

#include <string.h>

#define THING_MAGIC 0x7417u

typedef struct thing {
    unsigned magic;
    int n;
} thing;

static atomic_int made, freed, args_freed;

static thing *thing_new(int n)
{
    thing *t = malloc(sizeof(*t));
    thread_check(t != NULL);
    t->magic = THING_MAGIC;
    t->n = n;
    atomic_fetch_add(&made, 1);
    return t;
}

static void thing_free(void *p)
{
    thing *t = p;
    thread_check(t->magic == THING_MAGIC); /* not freed twice */
    t->magic = 0;
    free(t);
    atomic_fetch_add(&freed, 1);
}

static int thing_n(void *value)
{
    thing *t = value;
    thread_check(t && t->magic == THING_MAGIC);
    return t->n;
}

static void arg_free(void *p)
{
    (void)p;
    atomic_fetch_add(&args_freed, 1);
}

/* All things made were freed, once each. */
static void assert_all_freed(void)
{
    ck_assert_int_eq(atomic_load(&freed), atomic_load(&made));
}

static const fut_task_opts owned = {.value_free = thing_free};

/* A task making thing n (arg). */
static int make_thing(void *arg, void **value)
{
    *value = thing_new((int)(intptr_t)arg);
    return 0;
}

/* A continuation making a new thing: its input's n plus arg. */
static int then_thing(void *arg, void *input, void **value)
{
    *value = thing_new(thing_n(input) + (int)(intptr_t)arg);
    return 0;
}

/* A continuation passing an array on unchanged. */
static int then_same_array(void *arg, void *input, void **value)
{
    (void)arg;
    *value = input;
    return 0;
}

/* A continuation passing its input on unchanged. */
static int then_same(void *arg, void *input, void **value)
{
    (void)arg;
    thing_n(input);
    *value = input;
    return 0;
}

static int recover_thing(void *arg, int error, void *input, void **value)
{
    (void)input;
    *value = thing_new((int)(intptr_t)arg + error);
    return 0;
}

/* The value of f, which must succeed, as its n; f is released. */
static int await_n(fut_future *f)
{
    void *v = NULL;
    ck_assert_int_eq(fut_await(f, &v), 0);
    int n = thing_n(v);
    fut_release(f);
    return n;
}

/* Values the future owns are freed when its last reference goes, read
 * or not, released before or after the task finished. */
START_TEST(value_freed_at_release)
{
    fut_pool *pool = pool_new(2);
    gate g;
    gate_init(&g);
    fut_future *held = fut_spawn(pool, task_gate, &g);
    fut_future *early = fut_spawn_with(pool, &owned, make_thing, (void *)1);
    fut_release(early); /* before it ran: the task still runs */
    fut_future *late = fut_spawn_with(pool, &owned, make_thing, (void *)2);
    gate_open(&g);
    ck_assert_int_eq(await_n(late), 2);
    ck_assert_int_eq(await_rc(held), 0);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(atomic_load(&made), 2);
    assert_all_freed();
}
END_TEST

/* fut_take: the value is the caller's, once; the future no longer frees
 * it. A future without a destructor can be taken from too, once. */
START_TEST(take_once)
{
    fut_pool *pool = pool_new(2);
    fut_future *f = fut_spawn_with(pool, &owned, make_thing, (void *)3);
    void *v = (void *)1;
    ck_assert_int_eq(fut_take(f, &v), 0);
    ck_assert_int_eq(thing_n(v), 3);
    void *again = (void *)1;
    ck_assert_int_eq(fut_take(f, &again), EALREADY);
    ck_assert_ptr_null(again);
    void *read;
    ck_assert_int_eq(fut_await(f, &read), 0); /* still readable */
    ck_assert_ptr_eq(read, v);
    fut_release(f);
    ck_assert_int_eq(atomic_load(&freed), 0);
    thing_free(v);

    fut_future *plain = fut_spawn(pool, task_value, (void *)7);
    ck_assert_int_eq(fut_take(plain, &v), 0);
    ck_assert_ptr_eq(v, (void *)7);
    ck_assert_int_eq(fut_take(plain, &v), EALREADY);
    fut_release(plain);

    fut_future *failed = fut_spawn(pool, task_fail, (void *)EIO);
    ck_assert_int_eq(fut_take(failed, &v), EIO);
    ck_assert_ptr_null(v);
    fut_release(failed);

    ck_assert_int_eq(fut_take(NULL, &v), EINVAL);
    fut_future *ok = fut_spawn(pool, task_value, NULL);
    ck_assert_int_eq(fut_take(ok, NULL), EINVAL);
    fut_future *in[1] = {ok};
    fut_future *all = fut_all_values(in, 1);
    ck_assert_int_eq(fut_take(all, &v), EINVAL); /* the array is its own */
    fut_release(all);
    fut_release(ok);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    assert_all_freed();
}
END_TEST

/* A task that fails after storing a value: the value goes at once. */
static int make_then_fail(void *arg, void **value)
{
    *value = thing_new((int)(intptr_t)arg);
    return EIO;
}

static int then_same_fail(void *arg, void *input, void **value)
{
    (void)arg;
    *value = input;
    return EIO;
}

START_TEST(failed_task_value_freed)
{
    fut_pool *pool = pool_new(1);
    fut_future *f = fut_spawn_with(pool, &owned, make_then_fail, (void *)1);
    void *v = (void *)1;
    ck_assert_int_eq(fut_await(f, &v), EIO);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(atomic_load(&freed), 1);
    fut_release(f);
    /* A continuation failing with its input's value stored: that value
     * stays the input's, freed once. */
    f = fut_spawn_with(pool, &owned, make_thing, (void *)2);
    f = fut_then_with(f, &owned, then_same_fail, NULL);
    ck_assert_int_eq(await_rc(f), EIO);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(atomic_load(&made), 2);
    assert_all_freed();
}
END_TEST

/* Values passed on unchanged are freed once, by the future that made
 * them, which the later ones keep: a fut_catch that was not needed, a
 * fut_timeout in time, a continuation returning its input, a chain. The
 * value stays valid as long as any of them is held. */
static int chain_to(void *arg, void *input, fut_future **next)
{
    (void)input;
    *next = fut_spawn_with(arg, &owned, make_thing, (void *)40);
    return 0;
}

START_TEST(passed_on_values_freed_once)
{
    fut_pool *pool = pool_new(2);
    fut_future *f = fut_spawn_with(pool, &owned, make_thing, (void *)5);
    fut_future *kept = fut_retain(f);
    fut_future *c = fut_catch(f, recover_thing, NULL);
    c = fut_timeout(c, 60000);
    c = fut_then(c, then_same, NULL);
    c = fut_then_with(c, &owned, then_same, NULL); /* its own: unused */
    void *v;
    ck_assert_int_eq(fut_await(c, &v), 0);
    void *first;
    ck_assert_int_eq(fut_await(kept, &first), 0);
    ck_assert_ptr_eq(v, first);
    fut_release(kept); /* the first one: c keeps it */
    ck_assert_int_eq(atomic_load(&freed), 0);
    ck_assert_int_eq(thing_n(v), 5);
    fut_release(c); /* the last reference, or the last unit's (freed on
                       its worker: counted once the pool is gone) */

    fut_future *ch = fut_chain(fut_spawn(pool, task_value, NULL), chain_to,
                               pool);
    ck_assert_int_eq(await_n(ch), 40);

    /* A take through the last future is a take from the first. */
    f = fut_spawn_with(pool, &owned, make_thing, (void *)6);
    kept = fut_retain(f);
    c = fut_then(fut_catch(f, recover_thing, NULL), then_same, NULL);
    ck_assert_int_eq(fut_take(c, &v), 0);
    ck_assert_int_eq(fut_take(kept, &first), EALREADY);
    fut_release(c);
    fut_release(kept);
    ck_assert_int_eq(thing_n(v), 6);
    thing_free(v);

    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    assert_all_freed();
}
END_TEST

/* A long chain of futures each keeping its input for the value is freed
 * in a loop: no recursion as deep as the chain. */
START_TEST(long_pass_on_chain)
{
    fut_pool *pool = pool_new(1);
    fut_future *f = fut_spawn_with(pool, &owned, make_thing, (void *)8);
    for (int i = 0; i < 300000; i++)
        f = fut_catch(f, recover_thing, NULL);
    ck_assert_int_eq(await_n(f), 8);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    assert_all_freed();
}
END_TEST

/* A continuation's own value, and its input's, each freed once. */
START_TEST(continuation_values)
{
    fut_pool *pool = pool_new(2);
    fut_future *f = fut_spawn_with(pool, &owned, make_thing, (void *)1);
    f = fut_then_with(f, &owned, then_thing, (void *)10);
    ck_assert_int_eq(await_n(f), 11);
    /* A recovery's own value. */
    f = fut_catch_with(fut_spawn(pool, task_fail, (void *)EIO), &owned,
                       recover_thing, (void *)100);
    ck_assert_int_eq(await_n(f), 100 + EIO);
    f = fut_finally_with(fut_spawn(pool, task_value, NULL), &owned,
                         recover_thing, (void *)3);
    ck_assert_int_eq(await_n(f), 3);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(atomic_load(&made), 4);
    assert_all_freed();
}
END_TEST

/* A chain step that fails but stores a future anyway: it is released. */
static int chain_fail(void *arg, void *input, fut_future **next)
{
    (void)input;
    *next = fut_spawn_with(arg, &owned, make_thing, (void *)1);
    return EPROTO;
}

START_TEST(chain_error_releases_next)
{
    fut_pool *pool = pool_new(2);
    fut_future *f =
        fut_chain(fut_spawn(pool, task_value, NULL), chain_fail, pool);
    ck_assert_int_eq(await_rc(f), EPROTO);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    assert_all_freed(); /* ASan's leak check: the future too */
}
END_TEST

/* fut_all_values: the array's values stay their inputs', which it keeps
 * while it lives. */
START_TEST(gathered_values_stay_valid)
{
    fut_pool *pool = pool_new(2);
    fut_future *in[3];
    for (int i = 0; i < 3; i++)
        in[i] = fut_spawn_with(pool, &owned, make_thing, (void *)(intptr_t)i);
    fut_future *all = fut_all_values(in, 3);
    for (int i = 0; i < 3; i++)
        fut_release(in[i]);
    void *v;
    ck_assert_int_eq(fut_await(all, &v), 0);
    void **values = v;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(thing_n(values[i]), i);
    ck_assert_int_eq(atomic_load(&freed), 0);
    fut_release(all);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    assert_all_freed();
}
END_TEST

/* An array passed on from fut_all_values stays valid while the later
 * future is held, and cannot be taken through it either. */
static int chain_to_all(void *arg, void *input, fut_future **next)
{
    (void)input;
    fut_future **in = arg;
    *next = fut_all_values(in, 2);
    return 0;
}

START_TEST(gathered_array_passed_on)
{
    fut_pool *pool = pool_new(2);
    fut_future *in[2];
    for (int i = 0; i < 2; i++)
        in[i] = fut_spawn_with(pool, &owned, make_thing, (void *)(intptr_t)i);
    fut_future *passed[4] = {
        fut_catch(fut_all_values(in, 2), recover_thing, NULL),
        fut_timeout(fut_all_values(in, 2), 60000),
        fut_then(fut_all_values(in, 2), then_same_array, NULL),
        fut_chain(fut_spawn(pool, task_value, NULL), chain_to_all, in)};
    for (int k = 0; k < 4; k++) {
        void *v;
        ck_assert_int_eq(fut_await(passed[k], &v), 0);
        fut_await(passed[k], NULL); /* and its inputs are all done */
        ck_assert_int_eq(thing_n(((void **)v)[1]), 1);
        ck_assert_int_eq(fut_take(passed[k], &v), EINVAL);
    }
    for (int i = 0; i < 2; i++)
        fut_release(in[i]);
    for (int k = 0; k < 4; k++) {
        void *v;
        ck_assert_int_eq(fut_await(passed[k], &v), 0);
        ck_assert_int_eq(thing_n(((void **)v)[0]), 0); /* still valid */
        fut_release(passed[k]);
    }
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    assert_all_freed();
}
END_TEST

/* fut_promise_resolve_with: freed at release, taken, or at once when the
 * future was cancelled first or the promise is NULL. */
START_TEST(promise_owned_value)
{
    fut_pool *pool = pool_new(1);
    fut_promise *p;
    fut_future *f;
    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    ck_assert_int_eq(fut_promise_resolve_with(p, thing_new(1), thing_free), 0);
    ck_assert_int_eq(await_n(f), 1);
    ck_assert_int_eq(atomic_load(&freed), 1);

    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    ck_assert_int_eq(fut_cancel(f), 0);
    ck_assert_int_eq(fut_promise_resolve_with(p, thing_new(2), thing_free),
                     EALREADY);
    ck_assert_int_eq(atomic_load(&freed), 2);
    fut_release(f);

    ck_assert_int_eq(fut_promise_resolve_with(NULL, thing_new(3), thing_free),
                     EINVAL);
    ck_assert_int_eq(atomic_load(&freed), 3);

    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    ck_assert_int_eq(fut_promise_resolve_with(p, thing_new(4), thing_free), 0);
    void *v;
    ck_assert_int_eq(fut_take(f, &v), 0);
    fut_release(f);
    ck_assert_int_eq(atomic_load(&freed), 3);
    thing_free(v);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    assert_all_freed();
}
END_TEST

/* Every order of four events on a promise's owned value, with a timeout
 * and a continuation on it: the promise kept (R), the timeout awaited (T:
 * due in 1 ms when it comes before R, and the pool's virtual clock moved
 * on by 1 ms then, so it fires there and nowhere else, else in a minute), the continuation cancelled (C: which cancels the promise's
 * future too, its input, unless R came first), the caller's handle
 * released (X). Each value is freed once, and what is read is valid. */
enum { EV_R, EV_T, EV_C, EV_X };

static void run_order(fut_pool *pool, const int order[4])
{
    fut_promise *p;
    fut_future *f;
    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    int r_at = 0, t_at = 0;
    for (int i = 0; i < 4; i++) {
        r_at = order[i] == EV_R ? i : r_at;
        t_at = order[i] == EV_T ? i : t_at;
    }
    fut_future *t = fut_timeout(fut_retain(f), t_at < r_at ? 1 : 60000);
    fut_future *c = fut_then_with(fut_retain(f), &owned, then_thing,
                                  (void *)10);
    bool kept = false, dead = false; /* f cancelled before R */
    for (int i = 0; i < 4; i++) {
        switch (order[i]) {
        case EV_R: {
            int rc = fut_promise_resolve_with(p, thing_new(1), thing_free);
            ck_assert_int_eq(rc, dead ? EALREADY : 0);
            kept = rc == 0;
            break;
        }
        case EV_T: {
            void *v;
            if (t_at < r_at)
                ck_assert_int_eq(fut_clock_advance(pool, 1), 0);
            int rc = fut_await(t, &v);
            if (kept) {
                ck_assert_int_eq(rc, 0);
                ck_assert_int_eq(thing_n(v), 1);
            } else {
                ck_assert_int_eq(rc, dead ? ECANCELED : ETIMEDOUT);
                dead = true; /* the timeout cancelled f */
            }
            break;
        }
        case EV_C:
            fut_cancel(c);
            dead = dead || !kept;
            break;
        case EV_X:
            fut_release(f);
            f = NULL;
            break;
        }
    }
    void *v;
    int rc = fut_await(c, &v);
    if (rc == 0)
        ck_assert_int_eq(thing_n(v), 11);
    else
        ck_assert(rc == ECANCELED);
    fut_release(c);
    fut_release(t);
}

START_TEST(every_order)
{
    /* virtual time: the 1 ms timeout fires at T, however slow the run */
    fut_pool_config cfg = {.threads = 2, .virtual_time = true};
    fut_pool *pool;
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    int order[4] = {EV_R, EV_T, EV_C, EV_X};
    int runs = 0;
    /* All 24 permutations, by Heap's algorithm. */
    int idx[4] = {0, 0, 0, 0};
    run_order(pool, order);
    runs++;
    for (int i = 1; i < 4;) {
        if (idx[i] < i) {
            int j = i % 2 ? idx[i] : 0;
            int tmp = order[j];
            order[j] = order[i];
            order[i] = tmp;
            run_order(pool, order);
            runs++;
            idx[i]++;
            i = 1;
        } else {
            idx[i++] = 0;
        }
    }
    ck_assert_int_eq(runs, 24);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    assert_all_freed();
}
END_TEST

/* A timeout that fires before its task has finished: the value the task
 * makes afterwards is freed when the task's future goes (issue 10's
 * leak). */
static int gate_then_thing(void *arg, void **value)
{
    task_gate(arg, value);
    *value = thing_new(1);
    return 0;
}

START_TEST(timeout_then_value)
{
    fut_pool *pool = pool_new(1);
    gate g;
    gate_init(&g);
    fut_future *slow = fut_spawn_with(pool, &owned, gate_then_thing, &g);
    gate_wait_arrived(&g, 1);
    ck_assert_int_eq(await_rc(fut_timeout(slow, 1)), ETIMEDOUT);
    gate_open(&g);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    ck_assert_int_eq(atomic_load(&made), 1);
    assert_all_freed();
}
END_TEST

/* arg_free runs once: after the function ran; when it never runs
 * (cancelled, its input failed, its promise never kept, refused); and
 * when the call fails at once. */
static int task_arg(void *arg, void **value)
{
    thread_check(atomic_load(&args_freed) >= 0);
    *value = arg;
    return 0;
}

START_TEST(arg_freed_once)
{
    fut_task_opts o = {.arg_free = arg_free};
    fut_pool *pool = pool_new(1);
    int x = 0;
    ck_assert_int_eq(await_rc(fut_spawn_with(pool, &o, task_arg, &x)), 0);
    ck_assert_int_eq(atomic_load(&args_freed), 1);

    gate g;
    gate_init(&g);
    fut_future *held = fut_spawn(pool, task_gate, &g);
    gate_wait_arrived(&g, 1);
    fut_future *queued = fut_spawn_with(pool, &o, task_arg, &x);
    ck_assert_int_eq(fut_cancel(queued), 0);
    fut_release(queued);
    gate_open(&g);
    ck_assert_int_eq(await_rc(held), 0);
    ck_assert_int_eq(atomic_load(&args_freed), 2);

    fut_future *skipped = fut_then_with(fut_spawn(pool, task_fail, (void *)EIO),
                                        &o, then_add, &x);
    ck_assert_int_eq(await_rc(skipped), EIO);
    ck_assert_int_eq(atomic_load(&args_freed), 3);

    ck_assert_int_eq(await_rc(fut_spawn_with(NULL, &o, task_arg, &x)), EINVAL);
    ck_assert_int_eq(await_rc(fut_then_with(NULL, &o, then_add, &x)), EINVAL);
    ck_assert_int_eq(await_rc(fut_spawn_with(pool, &o, NULL, &x)), EINVAL);
    ck_assert_int_eq(atomic_load(&args_freed), 6);

    fut_promise *p;
    fut_future *f;
    ck_assert_int_eq(fut_promise_create(pool, &p, &f), 0);
    fut_future *never = fut_then_with(f, &o, then_add, &x);
    ck_assert_int_eq(fut_pool_destroy(pool), 0); /* cancels it */
    ck_assert_int_eq(atomic_load(&args_freed), 7);
    ck_assert_int_eq(await_rc(never), ECANCELED);
    ck_assert_int_eq(fut_promise_resolve(p, NULL), 0);

    closing cl;
    closing_start(&cl, NULL, NULL);
    fut_future *refused;
    int spawns = 1;
    while (fut_await_for(refused = fut_spawn_with(cl.pool, &o, task_arg, &x),
                         0, NULL) != ESHUTDOWN) {
        fut_release(refused);
        spawns++;
    }
    ck_assert_int_eq(atomic_load(&args_freed), 8); /* the refused one */
    fut_release(refused);
    closing_finish(&cl); /* runs the accepted ones */
    ck_assert_int_eq(atomic_load(&args_freed), 7 + spawns);
    fut_release(cl.held);
}
END_TEST

/* arg_size: the task gets its own copy of the caller's bytes, aligned,
 * which arg_free then sees. */
typedef struct request {
    long double precise; /* wants max_align_t */
    int id;
    char *owned;         /* freed by the argument's destructor */
} request;

static void request_free(void *p)
{
    request *r = p;
    free(r->owned);
    atomic_fetch_add(&args_freed, 1);
}

static int task_request(void *arg, void **value)
{
    request *r = arg;
    thread_check((uintptr_t)arg % _Alignof(max_align_t) == 0);
    thread_check(strcmp(r->owned, "page") == 0);
    *value = (void *)(intptr_t)r->id;
    return 0;
}

START_TEST(arg_copied)
{
    fut_pool *pool = pool_new(2);
    fut_task_opts o = {.arg_free = request_free, .arg_size = sizeof(request)};
    fut_future *f[8];
    for (int i = 0; i < 8; i++) {
        request r = {.precise = 1.5L, .id = i, .owned = strdup("page")};
        f[i] = fut_spawn_with(pool, &o, task_request, &r);
        memset(&r, 0, sizeof(r)); /* the caller's copy is gone */
    }
    for (int i = 0; i < 8; i++) {
        void *v;
        ck_assert_int_eq(fut_await(f[i], &v), 0);
        ck_assert_int_eq((int)(intptr_t)v, i);
        fut_release(f[i]);
    }
    ck_assert_int_eq(atomic_load(&args_freed), 8);
    fut_task_opts bad = {.arg_size = 4};
    ck_assert_int_eq(await_rc(fut_spawn_with(pool, &bad, task_request, NULL)),
                     EINVAL);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
}
END_TEST

/* A named task appears under its name in the trace. */
static int named_task(void *arg, void **value)
{
    (void)arg;
    *value = NULL;
    return 0;
}

START_TEST(name_in_trace)
{
    char path[] = "/tmp/fut-owned-XXXXXX";
    temp_file(path);
    fut_pool *pool;
    fut_pool_config cfg = {.threads = 1, .trace_path = path};
    ck_assert_int_eq(fut_pool_create(&pool, &cfg), 0);
    char name[] = "fetch \"home\"";
    fut_task_opts o = {.name = name};
    fut_future *f = fut_spawn_with(pool, &o, named_task, NULL);
    name[0] = 'X'; /* copied */
    ck_assert_int_eq(await_rc(fut_then_with(f, &o, then_add, NULL)), 0);
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    FILE *in = fopen(path, "r");
    ck_assert_ptr_nonnull(in);
    char buf[8192];
    size_t len = fread(buf, 1, sizeof(buf) - 1, in);
    buf[len] = '\0';
    fclose(in);
    unlink(path);
    const char *first = strstr(buf, "\"name\":\"fetch \\\"home\\\"\"");
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_nonnull(strstr(first + 1, "\"name\":\"Xetch \\\"home\\\"\""));
}
END_TEST

/* Races: the value's last reader on one thread, a take or a release on
 * another, timeouts against completions. Under TSan, and counted. */
static int race_then(void *arg, void *input, void **value)
{
    (void)arg;
    *value = input;
    return 0;
}

START_TEST(owned_races)
{
    fut_pool *pool = pool_new(2);
    for (int i = 0; i < 2000; i++) {
        fut_future *f = fut_spawn_with(pool, &owned, make_thing, (void *)1);
        fut_future *c = fut_then(fut_retain(f), race_then, NULL);
        fut_future *t = fut_timeout(fut_retain(c), (uint64_t)(i % 2));
        if (i % 3 == 0) {
            void *v;
            if (fut_take(t, &v) == 0)
                thing_free(v);
        }
        fut_release(f);
        fut_release(c);
        fut_release(t);
    }
    ck_assert_int_eq(fut_pool_destroy(pool), 0);
    assert_all_freed();
}
END_TEST

static Suite *owned_suite(void)
{
    Suite *s = suite_create("owned");
    FUT_TCASE(s, "values", value_freed_at_release, take_once,
              failed_task_value_freed, passed_on_values_freed_once,
              long_pass_on_chain, continuation_values,
              chain_error_releases_next, gathered_values_stay_valid,
              gathered_array_passed_on,
              promise_owned_value, every_order, timeout_then_value,
              owned_races);
    FUT_TCASE(s, "options", arg_freed_once, arg_copied, name_in_trace);
    return s;
}

FUT_TEST_MAIN(owned_suite)
