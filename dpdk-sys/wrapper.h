/*
 * The DPDK 22.11 API surface that DPVS-RS binds. bindgen reads this file; its `static inline`
 * functions get C wrappers through bindgen's wrap_static_fns.
 *
 * Only what bindgen cannot see is added by hand below, under the `dpvs_` / `DPVS_` prefix:
 * the thread-local rte_errno (a macro), and 64-bit constants built with RTE_BIT64, which bindgen
 * does not evaluate as macros but does evaluate as `static const` initialisers.
 */
#ifndef DPVS_DPDK_WRAPPER_H
#define DPVS_DPDK_WRAPPER_H

#include <stdint.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_bus_vdev.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

/* rte_errno of the calling thread (rte_errno is a macro over per-lcore TLS). */
int dpvs_rte_errno(void);

/* LCORE_ID_ANY is UINT32_MAX, spelled as a macro bindgen drops. */
static const uint32_t DPVS_LCORE_ID_ANY = LCORE_ID_ANY;

/* RSS hash functions (rte_eth_rss_conf.rss_hf, rte_eth_dev_info.flow_type_rss_offloads). */
static const uint64_t DPVS_ETH_RSS_IPV4 = RTE_ETH_RSS_IPV4;
static const uint64_t DPVS_ETH_RSS_NONFRAG_IPV4_TCP = RTE_ETH_RSS_NONFRAG_IPV4_TCP;
static const uint64_t DPVS_ETH_RSS_NONFRAG_IPV4_UDP = RTE_ETH_RSS_NONFRAG_IPV4_UDP;
static const uint64_t DPVS_ETH_RSS_IPV6 = RTE_ETH_RSS_IPV6;
static const uint64_t DPVS_ETH_RSS_NONFRAG_IPV6_TCP = RTE_ETH_RSS_NONFRAG_IPV6_TCP;
static const uint64_t DPVS_ETH_RSS_NONFRAG_IPV6_UDP = RTE_ETH_RSS_NONFRAG_IPV6_UDP;
static const uint64_t DPVS_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t DPVS_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
static const uint64_t DPVS_ETH_RSS_UDP = RTE_ETH_RSS_UDP;

/* Receive offloads (rte_eth_rxmode.offloads, rte_eth_dev_info.rx_offload_capa). */
static const uint64_t DPVS_ETH_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
static const uint64_t DPVS_ETH_RX_OFFLOAD_UDP_CKSUM = RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
static const uint64_t DPVS_ETH_RX_OFFLOAD_TCP_CKSUM = RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
static const uint64_t DPVS_ETH_RX_OFFLOAD_SCATTER = RTE_ETH_RX_OFFLOAD_SCATTER;
static const uint64_t DPVS_ETH_RX_OFFLOAD_RSS_HASH = RTE_ETH_RX_OFFLOAD_RSS_HASH;

/* Transmit offloads (rte_eth_txmode.offloads, rte_eth_dev_info.tx_offload_capa). */
static const uint64_t DPVS_ETH_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
static const uint64_t DPVS_ETH_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
static const uint64_t DPVS_ETH_TX_OFFLOAD_TCP_CKSUM = RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
static const uint64_t DPVS_ETH_TX_OFFLOAD_MULTI_SEGS = RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
static const uint64_t DPVS_ETH_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;

#endif
