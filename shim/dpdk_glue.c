/*
 * libgazelle-dpdk.so: the DPDK calls the C# stack needs but cannot P/Invoke.
 *
 * DPDK's fast path (rte_eth_rx_burst, rte_eth_tx_burst, rte_pktmbuf_alloc/free, the mbuf field
 * accessors, rte_ring bursts, rte_lcore_id, rte_errno) is `static inline` in its headers, so the
 * shared libraries have no symbol for it. This file compiles those inlines against the installed
 * headers and exports them, unversioned, under the prefix gz_dpdk_.
 *
 * It also owns the big configuration structs (rte_eth_conf, rte_eth_dev_info, rte_eth_link with
 * its bitfields, rte_eth_stats): C# never mirrors them. It sees small gz_dpdk_* structs instead,
 * whose sizes gz_dpdk_abi_size() reports so the managed side can refuse a mismatched build.
 *
 * Kept apart from the preload library libgazelle.so on purpose: linking DPDK pulls its libraries
 * and their constructors into every process; this library is loaded only when a stack starts a
 * DPDK port (see docs/dpdk.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_devargs.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#define GZ_EXPORT __attribute__((visibility("default")))

/* Bumped whenever a gz_dpdk_* struct or signature changes. */
#define GZ_DPDK_ABI_VERSION 2

/* ------------------------------------------------------------------ structs shared with C# */

/* What the stack needs from rte_eth_dev_info (flattened; sizes widened to natural alignment). */
struct gz_dpdk_dev_info {
	uint64_t rx_offload_capa;
	uint64_t tx_offload_capa;
	uint64_t flow_type_rss_offloads;
	uint32_t max_rx_pktlen;
	uint32_t min_rx_bufsize;
	uint32_t if_index;
	uint16_t max_rx_queues;
	uint16_t max_tx_queues;
	uint16_t reta_size;
	uint16_t hash_key_size;
	uint16_t min_mtu;
	uint16_t max_mtu;
	uint16_t rx_desc_max;
	uint16_t rx_desc_min;
	uint16_t tx_desc_max;
	uint16_t tx_desc_min;
	int32_t socket_id;
	uint32_t reserved;
	char driver_name[32];
	char device_name[64];
};

/* Port configuration: turned into rte_eth_conf + queue setup by gz_dpdk_port_setup. */
struct gz_dpdk_port_conf {
	uint64_t rx_offloads;             /* RTE_ETH_RX_OFFLOAD_* to enable (must be in capa) */
	uint64_t tx_offloads;             /* RTE_ETH_TX_OFFLOAD_* to enable */
	uint64_t rss_hf;                  /* RTE_ETH_RSS_* flow types; 0 = no RSS */
	const uint8_t *rss_key;           /* NULL = driver's default key */
	uint32_t rss_key_len;
	uint32_t mtu;                     /* 0 = keep the device's */
	uint16_t nb_rx_queues;
	uint16_t nb_tx_queues;
	uint16_t nb_rx_desc;
	uint16_t nb_tx_desc;
	struct rte_mempool *const *rx_pools; /* one per rx queue */
	uint32_t promiscuous;
	uint32_t reserved;
};

/* One mbuf as the managed PacketBuffer wrapper needs it (one call per burst fills N of these). */
struct gz_dpdk_mbuf_view {
	struct rte_mbuf *mbuf;
	uint8_t *buf_addr;
	uint64_t ol_flags;
	uint32_t pkt_len;
	uint32_t rss_hash;
	uint32_t packet_type;
	uint16_t buf_len;
	uint16_t data_off;
	uint16_t data_len;
	uint16_t nb_segs;
	uint16_t port;
	uint16_t reserved;
};

/* A frame to transmit: the managed buffer's current data window over its mbuf, then up to two spans of payload by
 * reference (ext1/ext2, 0 bytes when none: memory the stack keeps unchanged until the burst call returns; only for a
 * device that copies frames out during tx_burst, NicOffloads.TxPayloadByReference). */
struct gz_dpdk_tx_view {
	struct rte_mbuf *mbuf;
	uint16_t data_off;
	uint16_t data_len;
	uint16_t ext1_len;
	uint16_t ext2_len;
	uint8_t *ext1;
	uint8_t *ext2;
};

/* Per-queue receive counters for multi-segment frames (the managed side owns the memory). */
struct gz_dpdk_rx_counters {
	uint64_t linearized_in_place; /* chain folded into its first segment's tailroom */
	uint64_t linearized_copied;   /* chain copied into one fresh mbuf of the same pool */
	uint64_t multiseg_dropped;    /* chain longer than one mbuf, or the pool was empty */
};

struct gz_dpdk_link {
	uint32_t speed_mbps;
	uint16_t full_duplex;
	uint16_t autoneg;
	uint16_t up;
	uint16_t reserved[3];
};

struct gz_dpdk_stats {
	uint64_t ipackets;
	uint64_t opackets;
	uint64_t ibytes;
	uint64_t obytes;
	uint64_t imissed;
	uint64_t ierrors;
	uint64_t oerrors;
	uint64_t rx_nombuf;
};

GZ_EXPORT int gz_dpdk_abi_version(void) { return GZ_DPDK_ABI_VERSION; }

/* sizeof the shared structs, so the managed side checks its mirrors at start-up. */
GZ_EXPORT int gz_dpdk_abi_size(int which)
{
	switch (which) {
	case 1: return (int)sizeof(struct gz_dpdk_dev_info);
	case 2: return (int)sizeof(struct gz_dpdk_port_conf);
	case 3: return (int)sizeof(struct gz_dpdk_mbuf_view);
	case 4: return (int)sizeof(struct gz_dpdk_tx_view);
	case 5: return (int)sizeof(struct gz_dpdk_rx_counters);
	case 6: return (int)sizeof(struct gz_dpdk_link);
	case 7: return (int)sizeof(struct gz_dpdk_stats);
	default: return -1;
	}
}

/* ------------------------------------------------------------------ EAL */

/*
 * 1 + the lcore id gz_dpdk_act_as_lcore last gave this thread (0: none known). DPDK's own per-lcore id is a
 * general-dynamic TLS variable of librte_eal: reading it from here is a __tls_get_addr call, and the stack
 * asks before every rx and tx burst (3-4% of a TCP ping-pong's cycles with the call's GC transition, perf).
 * This copy is initial-exec (an %fs-relative load; 4 bytes of glibc's static TLS surplus kept for dlopened
 * libraries). Every call here that changes the thread's lcore id resets it.
 */
static __thread unsigned gz_acting_lcore __attribute__((tls_model("initial-exec")));

/*
 * rte_eal_init with its log captured: EAL prints the reason for a failure ("invalid parameter",
 * "Cannot get hugepage information") only to its log, so the log of the init goes into `log`
 * (its last loglen-1 bytes, NUL-terminated) for the managed side to quote in one line.
 * rte_errno is returned through rte_err. argv must stay alive: EAL permutes it.
 *
 * rte_eal_init pins the calling thread to the main lcore's CPUs (CPU 0 by default). In the
 * preloaded, shared-thread model the caller is one of the program's own threads, which never asked
 * to be pinned: two preloaded processes then shared CPU 0 and each busy-polling one waited for the
 * other's 4 ms scheduler tick (8 ms ping-pong RTT). With keep_affinity the caller's CPU set is
 * restored afterwards (through rte_thread_set_affinity, so EAL's own record agrees).
 */
GZ_EXPORT int gz_dpdk_eal_init(int argc, char **argv, char *log, size_t loglen, int *rte_err, int keep_affinity)
{
	cpu_set_t before;
	int have_before = keep_affinity && sched_getaffinity(0, sizeof(before), &before) == 0;
	char *buf = NULL;
	size_t size = 0;
	FILE *ms = open_memstream(&buf, &size);
	if (ms != NULL)
		rte_openlog_stream(ms);
	gz_acting_lcore = 0;
	int rc = rte_eal_init(argc, argv);
	int saved = rte_errno;
	if (have_before) {
		if (rc >= 0)
			rte_thread_set_affinity(&before);
		else
			sched_setaffinity(0, sizeof(before), &before);
	}
	if (ms != NULL) {
		rte_openlog_stream(NULL);
		fclose(ms);
	}
	if (rte_err != NULL)
		*rte_err = rc < 0 ? saved : 0;
	if (log != NULL && loglen > 0) {
		log[0] = '\0';
		if (buf != NULL) {
			const char *from = size >= loglen ? buf + (size - (loglen - 1)) : buf;
			snprintf(log, loglen, "%s", from);
		}
	}
	free(buf);
	return rc;
}

/* RTE_PKTMBUF_HEADROOM of the DPDK build this library was compiled against. */
GZ_EXPORT int gz_dpdk_pktmbuf_headroom(void) { return RTE_PKTMBUF_HEADROOM; }

/* rte_errno is a per-lcore TLS variable: read it on the thread that made the failing call. */
GZ_EXPORT int gz_dpdk_errno(void) { return rte_errno; }
GZ_EXPORT unsigned gz_dpdk_lcore_id(void) { return rte_lcore_id(); }


GZ_EXPORT int gz_dpdk_thread_register(void)
{
	gz_acting_lcore = 0;
	return rte_thread_register();
}
GZ_EXPORT void gz_dpdk_thread_unregister(void)
{
	gz_acting_lcore = 0;
	rte_thread_unregister();
}

/*
 * The calling thread acts as lcore `id` (its rte_lcore_id() says so) from now on. For a port driven by
 * whichever thread holds its stack's lock (the preload's shared-thread model): with the stack's lcore id
 * every driving thread uses the mempool's per-lcore cache (LIFO, recently freed mbufs still in the CPU
 * cache), where a thread EAL did not start has none and allocates and frees through the pool's ring (FIFO:
 * every mbuf cold). The caller guarantees that no two threads act as one lcore at the same time.
 */
GZ_EXPORT void gz_dpdk_act_as_lcore(unsigned id)
{
	if (likely(gz_acting_lcore == id + 1))
		return;
	RTE_PER_LCORE(_lcore_id) = id;
	gz_acting_lcore = id + 1;
}

/* ------------------------------------------------------------------ ethdev control path */

static void gz_err(char *err, size_t errlen, const char *fmt, int port, int code)
{
	if (err == NULL || errlen == 0)
		return;
	char what[160];
	snprintf(what, sizeof(what), fmt, port);
	snprintf(err, errlen, "%s: %s (errno %d)", what, rte_strerror(code < 0 ? -code : code),
		 code < 0 ? -code : code);
}

/* Next valid port id at or after `from`, or -1 (hides RTE_MAX_ETHPORTS, a build-time constant). */
GZ_EXPORT int gz_dpdk_port_next(uint16_t from)
{
	uint64_t p = rte_eth_find_next(from);
	return p >= RTE_MAX_ETHPORTS ? -1 : (int)p;
}

GZ_EXPORT int gz_dpdk_dev_info(uint16_t port, struct gz_dpdk_dev_info *out)
{
	struct rte_eth_dev_info di;
	memset(out, 0, sizeof(*out));
	int rc = rte_eth_dev_info_get(port, &di);
	if (rc != 0)
		return rc;
	out->rx_offload_capa = di.rx_offload_capa;
	out->tx_offload_capa = di.tx_offload_capa;
	out->flow_type_rss_offloads = di.flow_type_rss_offloads;
	out->max_rx_pktlen = di.max_rx_pktlen;
	out->min_rx_bufsize = di.min_rx_bufsize;
	out->if_index = di.if_index;
	out->max_rx_queues = di.max_rx_queues;
	out->max_tx_queues = di.max_tx_queues;
	out->reta_size = di.reta_size;
	out->hash_key_size = di.hash_key_size;
	out->min_mtu = di.min_mtu;
	out->max_mtu = di.max_mtu;
	out->rx_desc_max = di.rx_desc_lim.nb_max;
	out->rx_desc_min = di.rx_desc_lim.nb_min;
	out->tx_desc_max = di.tx_desc_lim.nb_max;
	out->tx_desc_min = di.tx_desc_lim.nb_min;
	out->socket_id = rte_eth_dev_socket_id(port);
	if (di.driver_name != NULL)
		snprintf(out->driver_name, sizeof(out->driver_name), "%s", di.driver_name);
	rte_eth_dev_get_name_by_port(port, out->device_name);
	return 0;
}

/*
 * Configures the port and sets up its queues (does not start it). On failure returns a negative
 * errno and writes a one-line reason naming the step into err.
 */
GZ_EXPORT int gz_dpdk_port_setup(uint16_t port, const struct gz_dpdk_port_conf *c, char *err, size_t errlen)
{
	struct rte_eth_dev_info di;
	struct rte_eth_conf conf;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	rc = rte_eth_dev_info_get(port, &di);
	if (rc != 0) {
		gz_err(err, errlen, "rte_eth_dev_info_get(port %d)", port, rc);
		return rc;
	}
	memset(&conf, 0, sizeof(conf));
	conf.rxmode.offloads = c->rx_offloads;
	conf.txmode.offloads = c->tx_offloads;
	conf.rxmode.mtu = c->mtu;
	if (c->rss_hf != 0) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = (uint8_t *)(uintptr_t)c->rss_key;
		conf.rx_adv_conf.rss_conf.rss_key_len = (uint8_t)c->rss_key_len;
		conf.rx_adv_conf.rss_conf.rss_hf = c->rss_hf & di.flow_type_rss_offloads;
	}
	rc = rte_eth_dev_configure(port, c->nb_rx_queues, c->nb_tx_queues, &conf);
	if (rc != 0) {
		gz_err(err, errlen, "rte_eth_dev_configure(port %d)", port, rc);
		return rc;
	}
	uint16_t nb_rxd = c->nb_rx_desc, nb_txd = c->nb_tx_desc;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
	if (rc != 0) {
		gz_err(err, errlen, "rte_eth_dev_adjust_nb_rx_tx_desc(port %d)", port, rc);
		return rc;
	}
	int socket = rte_eth_dev_socket_id(port);
	for (uint16_t q = 0; q < c->nb_rx_queues; q++) {
		rc = rte_eth_rx_queue_setup(port, q, nb_rxd, (unsigned)socket, NULL, c->rx_pools[q]);
		if (rc != 0) {
			gz_err(err, errlen, "rte_eth_rx_queue_setup(port %d)", port, rc);
			return rc;
		}
	}
	for (uint16_t q = 0; q < c->nb_tx_queues; q++) {
		rc = rte_eth_tx_queue_setup(port, q, nb_txd, (unsigned)socket, NULL);
		if (rc != 0) {
			gz_err(err, errlen, "rte_eth_tx_queue_setup(port %d)", port, rc);
			return rc;
		}
	}
	if (c->promiscuous) {
		rc = rte_eth_promiscuous_enable(port);
		if (rc != 0 && rc != -ENOTSUP) {
			gz_err(err, errlen, "rte_eth_promiscuous_enable(port %d)", port, rc);
			return rc;
		}
	}
	return 0;
}

GZ_EXPORT int gz_dpdk_link_get(uint16_t port, struct gz_dpdk_link *out, int wait)
{
	struct rte_eth_link l;
	memset(out, 0, sizeof(*out));
	int rc = wait ? rte_eth_link_get(port, &l) : rte_eth_link_get_nowait(port, &l);
	if (rc != 0)
		return rc;
	out->speed_mbps = l.link_speed;
	out->full_duplex = l.link_duplex;
	out->autoneg = l.link_autoneg;
	out->up = l.link_status;
	return 0;
}

GZ_EXPORT int gz_dpdk_stats_get(uint16_t port, struct gz_dpdk_stats *out)
{
	struct rte_eth_stats s;
	memset(out, 0, sizeof(*out));
	int rc = rte_eth_stats_get(port, &s);
	if (rc != 0)
		return rc;
	out->ipackets = s.ipackets;
	out->opackets = s.opackets;
	out->ibytes = s.ibytes;
	out->obytes = s.obytes;
	out->imissed = s.imissed;
	out->ierrors = s.ierrors;
	out->oerrors = s.oerrors;
	out->rx_nombuf = s.rx_nombuf;
	return 0;
}

/* Spreads the redirection table over `queues` (reta_size entries, one queue id each). */
GZ_EXPORT int gz_dpdk_reta_update(uint16_t port, const uint16_t *queues, uint16_t reta_size)
{
	uint16_t groups = (uint16_t)((reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) / RTE_ETH_RETA_GROUP_SIZE);
	struct rte_eth_rss_reta_entry64 *reta = calloc(groups, sizeof(*reta));
	if (reta == NULL)
		return -ENOMEM;
	for (uint16_t i = 0; i < reta_size; i++) {
		reta[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
		reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] = queues[i];
	}
	int rc = rte_eth_dev_rss_reta_update(port, reta, reta_size);
	free(reta);
	return rc;
}

GZ_EXPORT int gz_dpdk_reta_query(uint16_t port, uint16_t *queues, uint16_t reta_size)
{
	uint16_t groups = (uint16_t)((reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) / RTE_ETH_RETA_GROUP_SIZE);
	struct rte_eth_rss_reta_entry64 *reta = calloc(groups, sizeof(*reta));
	if (reta == NULL)
		return -ENOMEM;
	for (uint16_t g = 0; g < groups; g++)
		reta[g].mask = ~0ULL;
	int rc = rte_eth_dev_rss_reta_query(port, reta, reta_size);
	if (rc == 0)
		for (uint16_t i = 0; i < reta_size; i++)
			queues[i] = reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE];
	free(reta);
	return rc;
}

GZ_EXPORT int gz_dpdk_rss_hash_update(uint16_t port, const uint8_t *key, uint32_t key_len, uint64_t rss_hf)
{
	struct rte_eth_rss_conf rc;
	memset(&rc, 0, sizeof(rc));
	rc.rss_key = (uint8_t *)(uintptr_t)key;
	rc.rss_key_len = (uint8_t)key_len;
	rc.rss_hf = rss_hf;
	return rte_eth_dev_rss_hash_update(port, &rc);
}

/* Reads the active key (key_len bytes at most) and flow types; returns the key length or <0. */
GZ_EXPORT int gz_dpdk_rss_hash_conf_get(uint16_t port, uint8_t *key, uint32_t key_len, uint64_t *rss_hf)
{
	struct rte_eth_rss_conf rc;
	memset(&rc, 0, sizeof(rc));
	rc.rss_key = key;
	rc.rss_key_len = (uint8_t)key_len;
	int r = rte_eth_dev_rss_hash_conf_get(port, &rc);
	if (r != 0)
		return r;
	*rss_hf = rc.rss_hf;
	return rc.rss_key_len;
}

/* ------------------------------------------------------------------ ethdev fast path */

GZ_EXPORT uint16_t gz_dpdk_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, mbufs, n);
}

GZ_EXPORT uint16_t gz_dpdk_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, mbufs, n);
}

static inline void gz_view(const struct rte_mbuf *m, struct gz_dpdk_mbuf_view *v)
{
	v->mbuf = (struct rte_mbuf *)(uintptr_t)m;
	v->buf_addr = (uint8_t *)m->buf_addr;
	v->ol_flags = m->ol_flags;
	v->pkt_len = m->pkt_len;
	v->rss_hash = (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) ? m->hash.rss : 0;
	v->packet_type = m->packet_type;
	v->buf_len = m->buf_len;
	v->data_off = m->data_off;
	v->data_len = m->data_len;
	v->nb_segs = m->nb_segs;
	v->port = m->port;
	v->reserved = 0;
}

/*
 * Makes a received chain one contiguous segment: in place when the first segment has the
 * tailroom, else by copying into one fresh mbuf of the same pool; drops (and counts) otherwise.
 */
static struct rte_mbuf *gz_linearize(struct rte_mbuf *m, struct gz_dpdk_rx_counters *ctr)
{
	if (__rte_pktmbuf_linearize(m) == 0) {
		ctr->linearized_in_place++;
		return m;
	}
	struct rte_mbuf *c = rte_pktmbuf_alloc(m->pool);
	if (c != NULL && m->pkt_len <= rte_pktmbuf_tailroom(c)) {
		uint8_t *dst = (uint8_t *)rte_pktmbuf_append(c, (uint16_t)m->pkt_len);
		for (const struct rte_mbuf *s = m; s != NULL; s = s->next) {
			memcpy(dst, rte_pktmbuf_mtod(s, const uint8_t *), s->data_len);
			dst += s->data_len;
		}
		c->port = m->port;
		c->ol_flags = m->ol_flags;
		c->packet_type = m->packet_type;
		c->hash = m->hash;
		c->vlan_tci = m->vlan_tci;
		rte_pktmbuf_free(m);
		ctr->linearized_copied++;
		return c;
	}
	if (c != NULL)
		rte_pktmbuf_free(c);
	rte_pktmbuf_free(m);
	ctr->multiseg_dropped++;
	return NULL;
}

/*
 * rx_burst + a view of each received mbuf, so the managed side makes one native call per burst.
 * Multi-segment frames are linearised (see gz_linearize). Returns the number of views filled;
 * mbufs[0..ret) holds the matching mbufs.
 */
GZ_EXPORT uint16_t gz_dpdk_rx_burst_views(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs,
					  struct gz_dpdk_mbuf_view *views, uint16_t n,
					  struct gz_dpdk_rx_counters *ctr)
{
	uint16_t got = rte_eth_rx_burst(port, queue, mbufs, n);
	uint16_t out = 0;
	for (uint16_t i = 0; i < got; i++) {
		struct rte_mbuf *m = mbufs[i];
		if (unlikely(m->next != NULL)) {
			m = gz_linearize(m, ctr);
			if (m == NULL)
				continue;
		}
		mbufs[out] = m;
		gz_view(m, &views[out]);
		out++;
	}
	return out;
}

/*
 * Writes each view's data window into its (single-segment) mbuf and transmits. The device owns
 * mbufs[0..ret); the caller keeps the rest. scratch holds n pointers.
 */
/* Frees the segments chained behind a header mbuf the device did not take (the header mbuf stays the caller's). */
static void gz_unchain(struct rte_mbuf *m)
{
	if (m->next != NULL) {
		rte_pktmbuf_free(m->next);
		m->next = NULL;
		m->nb_segs = 1;
	}
}

/* The external buffer of every segment that carries a payload by reference. Its free callback has nothing to free
 * (the stack owns the memory) and its count is raised once per attached segment, so it never reaches zero. */
static void gz_ext_noop_free(void *addr, void *opaque)
{
	(void)addr;
	(void)opaque;
}
static struct rte_mbuf_ext_shared_info gz_ext_shinfo = { .free_cb = gz_ext_noop_free, .fcb_opaque = NULL, .refcnt = 1 };

/* Appends len bytes at p to the frame m whose last segment is last: as a segment over the memory (an mbuf of m's
 * pool attached to it as an external buffer: the device copies from there), or, when the pool has no mbuf and
 * nothing is chained yet, copied into m's tailroom (the caller sized the frame to fit one mbuf). Returns the new
 * last segment, NULL when neither was possible. */
static struct rte_mbuf *gz_append_ref(struct rte_mbuf *m, struct rte_mbuf *last, uint8_t *p, uint16_t len, uint64_t *copied)
{
	struct rte_mbuf *e = rte_pktmbuf_alloc(m->pool);
	if (e == NULL) {
		if (last != m || rte_pktmbuf_tailroom(m) < len)
			return NULL;
		memcpy(rte_pktmbuf_mtod_offset(m, uint8_t *, m->data_len), p, len);
		m->data_len += len;
		m->pkt_len += len;
		(*copied)++;
		return m;
	}
	rte_mbuf_ext_refcnt_update(&gz_ext_shinfo, 1);
	rte_pktmbuf_attach_extbuf(e, p, RTE_BAD_IOVA, len, &gz_ext_shinfo);
	e->data_len = len;
	last->next = e;
	m->nb_segs++;
	m->pkt_len += len;
	return e;
}

/* Hands n frames to the device; a frame with payload by reference becomes a chain (header mbuf, then one segment per
 * span). Frames the device refuses get their chains back off (the caller still owns their header mbufs). copied
 * counts spans copied because the pool was empty; a frame that could be neither chained nor copied ends the burst. */
GZ_EXPORT uint16_t gz_dpdk_tx_burst_views(uint16_t port, uint16_t queue, const struct gz_dpdk_tx_view *views,
					  struct rte_mbuf **scratch, uint16_t n, uint64_t *copied)
{
	uint16_t ready = 0;
	for (; ready < n; ready++) {
		struct rte_mbuf *m = views[ready].mbuf;
		m->data_off = views[ready].data_off;
		m->data_len = views[ready].data_len;
		m->pkt_len = views[ready].data_len;
		if (views[ready].ext1_len != 0) {
			struct rte_mbuf *last = gz_append_ref(m, m, views[ready].ext1, views[ready].ext1_len, copied);
			if (last != NULL && views[ready].ext2_len != 0)
				last = gz_append_ref(m, last, views[ready].ext2, views[ready].ext2_len, copied);
			if (last == NULL) {
				gz_unchain(m);
				break;
			}
		}
		scratch[ready] = m;
	}
	uint16_t sent = rte_eth_tx_burst(port, queue, scratch, ready);
	for (uint16_t i = sent; i < ready; i++)
		gz_unchain(scratch[i]);
	return sent;
}

/* 1 when the device argument string of the device named dev_name (as given to --vdev/-a) contains needle, else 0
 * (no such device, or no arguments). */
GZ_EXPORT int gz_dpdk_devargs_contain(const char *dev_name, const char *needle)
{
	for (const struct rte_devargs *da = rte_devargs_next(NULL, NULL); da != NULL; da = rte_devargs_next(NULL, da))
		if (strcmp(da->name, dev_name) == 0)
			return da->args != NULL && strstr(da->args, needle) != NULL;
	return 0;
}

/* ------------------------------------------------------------------ mbufs */

GZ_EXPORT struct rte_mbuf *gz_dpdk_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

/* Allocates one mbuf and describes it (one native call per rented buffer). NULL when empty. */
GZ_EXPORT struct rte_mbuf *gz_dpdk_pktmbuf_alloc_view(struct rte_mempool *mp, struct gz_dpdk_mbuf_view *v)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	if (m != NULL)
		gz_view(m, v);
	return m;
}

/* Allocates n mbufs (all or none: 0, or -ENOENT) and describes each. */
GZ_EXPORT int gz_dpdk_pktmbuf_alloc_bulk_views(struct rte_mempool *mp, struct gz_dpdk_mbuf_view *views, unsigned n)
{
	struct rte_mbuf *mbufs[64];
	unsigned done = 0;
	while (done < n) {
		unsigned k = n - done < 64 ? n - done : 64;
		int rc = rte_pktmbuf_alloc_bulk(mp, mbufs, k);
		if (rc != 0) {
			for (unsigned i = 0; i < done; i++)
				rte_pktmbuf_free(views[i].mbuf);
			return rc;
		}
		for (unsigned i = 0; i < k; i++)
			gz_view(mbufs[i], &views[done + i]);
		done += k;
	}
	return 0;
}

GZ_EXPORT int gz_dpdk_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

GZ_EXPORT void gz_dpdk_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
GZ_EXPORT void gz_dpdk_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n) { rte_pktmbuf_free_bulk(mbufs, n); }

GZ_EXPORT void gz_dpdk_mbuf_view(const struct rte_mbuf *m, struct gz_dpdk_mbuf_view *v) { gz_view(m, v); }
GZ_EXPORT void *gz_dpdk_mbuf_data(const struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
GZ_EXPORT void *gz_dpdk_mbuf_buf_addr(const struct rte_mbuf *m) { return m->buf_addr; }
GZ_EXPORT uint16_t gz_dpdk_mbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }
GZ_EXPORT uint32_t gz_dpdk_mbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }
GZ_EXPORT uint16_t gz_dpdk_mbuf_data_off(const struct rte_mbuf *m) { return m->data_off; }
GZ_EXPORT uint16_t gz_dpdk_mbuf_buf_len(const struct rte_mbuf *m) { return m->buf_len; }
GZ_EXPORT uint16_t gz_dpdk_mbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }
GZ_EXPORT struct rte_mbuf *gz_dpdk_mbuf_next(const struct rte_mbuf *m) { return m->next; }
GZ_EXPORT uint32_t gz_dpdk_mbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }
GZ_EXPORT uint64_t gz_dpdk_mbuf_ol_flags(const struct rte_mbuf *m) { return m->ol_flags; }
GZ_EXPORT uint32_t gz_dpdk_mbuf_packet_type(const struct rte_mbuf *m) { return m->packet_type; }
GZ_EXPORT uint16_t gz_dpdk_mbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
GZ_EXPORT uint16_t gz_dpdk_mbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
GZ_EXPORT uint16_t gz_dpdk_mbuf_refcnt(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
GZ_EXPORT struct rte_mempool *gz_dpdk_mbuf_pool(const struct rte_mbuf *m) { return m->pool; }
GZ_EXPORT int gz_dpdk_mbuf_is_contiguous(const struct rte_mbuf *m) { return rte_pktmbuf_is_contiguous(m); }
GZ_EXPORT char *gz_dpdk_mbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
GZ_EXPORT char *gz_dpdk_mbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
GZ_EXPORT char *gz_dpdk_mbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
GZ_EXPORT int gz_dpdk_mbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
GZ_EXPORT int gz_dpdk_mbuf_linearize(struct rte_mbuf *m) { return rte_pktmbuf_linearize(m); }

/* Appends chain `tail` to chain `head` (rte_pktmbuf_chain): 0, or -EOVERFLOW past RTE_MBUF_MAX_NB_SEGS. */
GZ_EXPORT int gz_dpdk_mbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail) { return rte_pktmbuf_chain(head, tail); }

/* Requests checksum / segmentation offload for a frame about to be sent (RTE_MBUF_F_TX_*). */
GZ_EXPORT void gz_dpdk_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t ol_flags, uint16_t l2_len,
					   uint16_t l3_len, uint16_t l4_len, uint16_t tso_segsz)
{
	m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_TX_OFFLOAD_MASK) | (ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK);
	m->l2_len = l2_len;
	m->l3_len = l3_len;
	m->l4_len = l4_len;
	m->tso_segsz = tso_segsz;
}

GZ_EXPORT unsigned gz_dpdk_mempool_avail_count(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }
GZ_EXPORT unsigned gz_dpdk_mempool_in_use_count(const struct rte_mempool *mp) { return rte_mempool_in_use_count(mp); }
GZ_EXPORT uint16_t gz_dpdk_mempool_data_room(struct rte_mempool *mp) { return rte_pktmbuf_data_room_size(mp); }

/* ------------------------------------------------------------------ rings */

GZ_EXPORT unsigned gz_dpdk_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n, unsigned *free_space)
{
	return rte_ring_enqueue_burst(r, objs, n, free_space);
}

GZ_EXPORT unsigned gz_dpdk_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n, unsigned *available)
{
	return rte_ring_dequeue_burst(r, objs, n, available);
}

GZ_EXPORT unsigned gz_dpdk_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
GZ_EXPORT unsigned gz_dpdk_ring_free_count(const struct rte_ring *r) { return rte_ring_free_count(r); }
