/*
 * Hand-written C for what bindgen cannot bind: rte_errno is a macro over a per-lcore
 * thread-local, so Rust reads it through this function.
 */
#include "wrapper.h"

int dpvs_rte_errno(void)
{
	return rte_errno;
}
