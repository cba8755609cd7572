/* libgazelle-alloc.so: the malloc family for the NativeAOT stack library, forwarded to the
 * process's global allocator.
 *
 * Why: libgazelle-stack.so is dlopen'ed with RTLD_DEEPBIND, so its symbols resolve in its own
 * dependencies first: its malloc/free would be glibc's. But a program may replace malloc for the
 * whole process (redis-server links jemalloc), and glibc's own internals (realpath, strdup, getcwd,
 * ...) then allocate with the replacement; when the runtime free()s such a block with glibc's free,
 * the process aborts ("free(): invalid pointer", seen with redis-server). This library is the stack
 * library's first DT_NEEDED entry, ahead of libc, so inside the deep-bound scope the malloc family
 * resolves here, and here it goes to the global definition: the one glibc's internals use.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define GZ_EXPORT __attribute__((visibility("default")))

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);
static size_t (*next_malloc_usable_size)(void *);

/* dlsym may allocate before the forwards are known: serve that from a small static arena whose
 * blocks are never freed (free ignores pointers inside it). */
static _Alignas(16) unsigned char bootstrap[16384];
static size_t bootstrap_used;

static int in_bootstrap(const void *p)
{
    return (const unsigned char *)p >= bootstrap && (const unsigned char *)p < bootstrap + sizeof bootstrap;
}

static void *bootstrap_alloc(size_t n)
{
    size_t rounded = (n + 15) & ~(size_t)15;
    if (rounded > sizeof bootstrap - bootstrap_used) return NULL;
    void *p = bootstrap + bootstrap_used;
    bootstrap_used += rounded;
    return p;
}

static int resolving;

GZ_EXPORT void *malloc(size_t n);
GZ_EXPORT void free(void *p);
GZ_EXPORT void *calloc(size_t count, size_t size);
GZ_EXPORT void *realloc(void *p, size_t n);
GZ_EXPORT int posix_memalign(void **out, size_t alignment, size_t n);
GZ_EXPORT void *aligned_alloc(size_t alignment, size_t n);
GZ_EXPORT void *memalign(size_t alignment, size_t n);
GZ_EXPORT size_t malloc_usable_size(void *p);

/* The global scope, where a replacement allocator lives: the handle of dlopen(NULL) searches the
 * program, everything loaded at start-up (LD_PRELOAD included) and RTLD_GLOBAL libraries. Not
 * RTLD_DEFAULT: from inside a deep-bound scope that searches the caller's own scope first and
 * would find this library's definitions (an endless forward). */
static void *global_symbol(const char *name, void *self)
{
    static void *program;
    if (!program) program = dlopen(NULL, RTLD_NOW);
    void *f = program ? dlsym(program, name) : NULL;
    if (f == self) f = dlsym(RTLD_NEXT, name); /* never forward to ourselves */
    return f == self ? NULL : f;
}

__attribute__((constructor)) static void resolve_global_allocator(void)
{
    resolving = 1;
    next_malloc = global_symbol("malloc", (void *)malloc);
    next_free = global_symbol("free", (void *)free);
    next_calloc = global_symbol("calloc", (void *)calloc);
    next_realloc = global_symbol("realloc", (void *)realloc);
    next_posix_memalign = global_symbol("posix_memalign", (void *)posix_memalign);
    next_aligned_alloc = global_symbol("aligned_alloc", (void *)aligned_alloc);
    next_memalign = global_symbol("memalign", (void *)memalign);
    next_malloc_usable_size = global_symbol("malloc_usable_size", (void *)malloc_usable_size);
    resolving = 0;
}

GZ_EXPORT void *malloc(size_t n)
{
    if (!next_malloc) {
        if (!resolving) resolve_global_allocator();
        if (!next_malloc) return bootstrap_alloc(n);
    }
    return next_malloc(n);
}

GZ_EXPORT void free(void *p)
{
    if (!p || in_bootstrap(p)) return;
    if (!next_free) resolve_global_allocator();
    next_free(p);
}

GZ_EXPORT void *calloc(size_t count, size_t size)
{
    if (!next_calloc) {
        if (!resolving) resolve_global_allocator();
        if (!next_calloc) {
            if (size && count > SIZE_MAX / size) return NULL;
            return bootstrap_alloc(count * size); /* static memory is already zero */
        }
    }
    return next_calloc(count, size);
}

GZ_EXPORT void *realloc(void *p, size_t n)
{
    if (in_bootstrap(p)) {
        /* Rare: a bootstrap block grows after the forwards are known. Copy what can be copied. */
        unsigned char *q = malloc(n);
        if (q) {
            size_t avail = (size_t)(bootstrap + bootstrap_used - (unsigned char *)p);
            for (size_t i = 0; i < n && i < avail; i++) q[i] = ((unsigned char *)p)[i];
        }
        return q;
    }
    if (!next_realloc) resolve_global_allocator();
    return next_realloc(p, n);
}

GZ_EXPORT int posix_memalign(void **out, size_t alignment, size_t n)
{
    if (!next_posix_memalign) resolve_global_allocator();
    return next_posix_memalign ? next_posix_memalign(out, alignment, n) : ENOMEM;
}

GZ_EXPORT void *aligned_alloc(size_t alignment, size_t n)
{
    if (!next_aligned_alloc) resolve_global_allocator();
    return next_aligned_alloc ? next_aligned_alloc(alignment, n) : NULL;
}

GZ_EXPORT void *memalign(size_t alignment, size_t n)
{
    if (!next_memalign) resolve_global_allocator();
    return next_memalign ? next_memalign(alignment, n) : NULL;
}

GZ_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p || in_bootstrap(p)) return 0;
    if (!next_malloc_usable_size) resolve_global_allocator();
    return next_malloc_usable_size ? next_malloc_usable_size(p) : 0;
}
