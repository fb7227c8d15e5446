// Stand-in for the original's `Cluster`: only the members its processing headers and the
// driver use, and the synapse blocks in a plain vector (the original's `ItemBuffer` and
// `getItemData`).
#pragma once
#include <core/cluster/objects.h>

#include <cassert>
#include <map>
#include <string>
#include <vector>

/// The synapse blocks of a cluster; room for 2,048 is reserved up front, so that pointers
/// into it stay valid (a 1-epoch MNIST network uses about 20).
struct ItemBuffer {
    std::vector<SynapseBlock> items;
    ItemBuffer() { items.reserve(2048); }
    /// Appends a block and returns its position, or `UNINIT_STATE_64` when the room is used up.
    uint64_t addNewItem(const SynapseBlock& block)
    {
        if (items.size() == items.capacity()) {
            return UNINIT_STATE_64;
        }
        items.push_back(block);
        return items.size() - 1;
    }
};

/// The first block of the buffer.
template <typename T>
inline T* getItemData(ItemBuffer& buffer)
{
    return buffer.items.data();
}

/// The host a cluster runs on: here only its synapse blocks.
struct LogicalHost {
    ItemBuffer synapseBlocks;
};

/// The cluster state the processing headers and the driver read and write.
class Cluster
{
   public:
    LogicalHost* attachedHost = nullptr;
    bool enableCreation = false;
    ClusterHeader clusterHeader;
    std::vector<Hexagon> hexagons;
    std::map<std::string, InputInterface> inputInterfaces;
    std::map<std::string, OutputInterface> outputInterfaces;
};
