/* Error messages and names, generated from SC_ERRNO_MAP. */
#include "err.h"

#include <errno.h>

const char *sc_strerror(int err)
{
    switch (err) {
    case SC_OK: return "ok";
#define SC_ERR_MSG_(name, msg) case SC_E##name: return msg;
    SC_ERRNO_MAP(SC_ERR_MSG_)
#undef SC_ERR_MSG_
    default: return "unknown error";
    }
}

const char *sc_err_name(int err)
{
    switch (err) {
    case SC_OK: return "SC_OK";
#define SC_ERR_NAME_(name, msg) case SC_E##name: return "SC_E" #name;
    SC_ERRNO_MAP(SC_ERR_NAME_)
#undef SC_ERR_NAME_
    default: return "SC_EUNKNOWN";
    }
}

int sc_err_from_errno(int e)
{
    if (e < 0) e = -e;
    switch (e) {
    case 0: return SC_OK;
    case ENOMEM: return SC_ENOMEM;
    case EINVAL: return SC_EINVAL;
    case ENOENT: return SC_ENOTFOUND;
    case EEXIST: return SC_EEXISTS;
    case ETIMEDOUT: return SC_ETIMEOUT;
    case EFBIG: case E2BIG: return SC_ETOOBIG;
    case ENOSPC: case EDQUOT: return SC_ENOSPACE;
    case EACCES: case EPERM: return SC_EFORBIDDEN;
    case EBUSY: case EAGAIN: return SC_EBUSY;
    default: return SC_EIO;
    }
}
