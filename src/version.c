/* version: the build's identity for `rlaif --version` and for the run files. */
#include <H5public.h>
#include <cblas.h>
#include <mpi.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <yaml.h>

#include "build_info.h"
#include "cli.h"

#define RLAIF_VERSION "0.1.0"

const char *cli_version_string(void) {
    static char buf[2048];
    if (buf[0]) return buf;
    char mpi_lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0, inited = 0;
    MPI_Initialized(&inited);
    /* MPI_Get_library_version may be called before MPI_Init */
    MPI_Get_library_version(mpi_lib, &len);
    for (int i = 0; mpi_lib[i]; i++)
        if (mpi_lib[i] == '\n' || mpi_lib[i] == ',') {
            mpi_lib[i] = '\0';
            break;
        }
    unsigned hmaj, hmin, hrel;
    H5get_libversion(&hmaj, &hmin, &hrel);
    snprintf(buf, sizeof buf,
             "rlaif %s\n"
             "git commit: %s\n"
             "compiler: %s\n"
             "flags: %s\n"
             "mpi: %s (MPI %d.%d)\n"
             "openblas: %s (core %s)\n"
             "hdf5: %u.%u.%u%s\n"
             "libyaml: %s\n"
             "pcre2: %d.%d\n",
             RLAIF_VERSION, RLAIF_GIT_COMMIT, RLAIF_CC_VERSION, RLAIF_CFLAGS, mpi_lib, MPI_VERSION,
             MPI_SUBVERSION, openblas_get_config(), openblas_get_corename(), hmaj, hmin, hrel,
#ifdef H5_HAVE_PARALLEL
             " (parallel)",
#else
             "",
#endif
             yaml_get_version_string(), PCRE2_MAJOR, PCRE2_MINOR);
    return buf;
}
