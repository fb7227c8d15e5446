// Runs the original engine's processing code (kitsudaiki/OpenHanami at 04376e7a, its headers
// compiled unchanged) on MNIST, single-threaded, for comparison with this project's engine on
// the same machine: the documentation template's cluster, EPOCHS epochs over the 60,000
// training images, each followed by requests over the 10,000 test images. Prints one JSON line
// per epoch, as the engine's `mnist` example does. Built and run by scripts/bench_original.sh.
//
// The cycle follows engine.md §3.1 and §4 (hexagons in order, blocks ascending, the output
// layer after the output hexagon's blocks, the structural update at the end of a training
// forward pass, then the backward pass from the last hexagon down); the cluster is set up as
// engine.md §1.6-§1.7 describe for the template (three hexagons in a line along +x).
//
//   usage: driver MNIST_DIR [EPOCHS [SEED]]
#include <core/cluster/cluster.h>
#include <core/processing/cluster_io_functions.h>
#include <core/processing/cluster_resize.h>
#include <core/processing/cpu/backpropagation.h>
#include <core/processing/cpu/processing.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace
{

constexpr uint32_t INPUTS = 784;
constexpr uint32_t OUTPUTS = 10;
constexpr uint32_t TRAIN_ROWS = 60000;
constexpr uint32_t TEST_ROWS = 10000;

std::vector<uint8_t> readAll(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

/// One growth-target walk of engine.md §1.7 (with its two `rand()` draws per step).
uint32_t walkTarget(Cluster& cluster, Hexagon& current, uint32_t& stepsLeft)
{
    stepsLeft--;
    if (stepsLeft == 0) {
        return current.header.hexagonId;
    }
    (void)(rand() % 1000);  // the stop chance, drawn and ignored
    static const uint8_t forwardSides[7] = {9, 3, 1, 4, 11, 5, 2};
    const uint8_t start = forwardSides[rand() % 7];
    for (uint32_t i = 0; i < 7; i++) {
        const uint32_t next = current.neighbors[forwardSides[(i + start) % 7]];
        if (next != UNINIT_STATE_32) {
            return walkTarget(cluster, cluster.hexagons[next], stepsLeft);
        }
    }
    return current.header.hexagonId;
}

/// The documentation template's cluster: input (784) -> hidden -> output (10).
void setUp(Cluster& cluster, LogicalHost& host)
{
    cluster.attachedHost = &host;
    ClusterSettings& settings = cluster.clusterHeader.settings;
    settings.neuronCooldown = 10000000.0f;
    settings.refractoryTime = 1;
    settings.maxConnectionDistance = 1;
    settings.enableReduction = false;
    cluster.hexagons.resize(3);
    for (uint32_t i = 0; i < 3; i++) {
        Hexagon& hexagon = cluster.hexagons[i];
        hexagon.cluster = &cluster;
        hexagon.header.hexagonId = i;
        std::fill_n(hexagon.neighbors, 12, UNINIT_STATE_32);
    }
    // In a line along +x: side 4 is +x, side 7 its opposite, and no other side has a hexagon.
    cluster.hexagons[0].neighbors[4] = 1;
    cluster.hexagons[1].neighbors[7] = 0;
    cluster.hexagons[1].neighbors[4] = 2;
    cluster.hexagons[2].neighbors[7] = 1;
    for (Hexagon& base : cluster.hexagons) {
        for (uint32_t k = 0; k < NUMBER_OF_POSSIBLE_NEXT; k++) {
            uint32_t steps = settings.maxConnectionDistance + 1;
            const uint32_t id = walkTarget(cluster, base, steps);
            base.possibleHexagonTargetIds[k] = id != base.header.hexagonId ? id : UNINIT_STATE_32;
        }
    }
    InputInterface& input = cluster.inputInterfaces["picture"];
    input.targetHexagonId = 0;
    input.inputNeurons.resize(INPUTS);
    cluster.hexagons[0].header.isInputHexagon = true;
    cluster.hexagons[0].neuronBlocks.resize(INPUTS / NEURONS_PER_NEURONBLOCK + 1);
    cluster.hexagons[0].inputInterface = &input;
    OutputInterface& output = cluster.outputInterfaces["label"];
    output.targetHexagonId = 2;
    output.outputNeurons.resize(OUTPUTS);
    cluster.hexagons[2].header.isOutputHexagon = true;
    cluster.hexagons[2].outputInterface = &output;
}

/// A forward pass (engine.md §3.1); requests run the growing variant too, as in the original.
void forward(Cluster& cluster, const bool train)
{
    const uint32_t count = cluster.hexagons.size();
    for (uint32_t h = 0; h < count; h++) {
        Hexagon* hexagon = &cluster.hexagons[h];
        if (hexagon->inputInterface != nullptr) {
            for (Hexagon& inputHexagon : cluster.hexagons) {
                if (inputHexagon.header.isInputHexagon) {
                    processNeuronsOfInputHexagon<true>(
                        cluster, hexagon->inputInterface, &inputHexagon);
                }
            }
        }
        if (hexagon->neuronBlocks.empty()) {
            if (h == count - 1 && train) {
                updateCluster(cluster);
            }
            continue;
        }
        if (!hexagon->header.isInputHexagon) {
            for (uint32_t b = 0; b < hexagon->neuronBlocks.size(); b++) {
                processSynapses<true>(cluster, hexagon, b);
                if (!hexagon->header.isOutputHexagon) {
                    processNeurons<true>(cluster, hexagon, b);
                }
            }
        }
        if (hexagon->outputInterface != nullptr) {
            if (train) {
                processNeuronsOfOutputHexagon<true>(
                    cluster.hexagons, hexagon->outputInterface, h, rand());
            }
            else {
                processNeuronsOfOutputHexagon<false>(
                    cluster.hexagons, hexagon->outputInterface, h, rand());
            }
        }
        if (h == count - 1 && train) {
            updateCluster(cluster);
        }
    }
    cluster.enableCreation = false;
}

/// The backward pass (engine.md §4).
void backward(Cluster& cluster)
{
    for (int32_t h = cluster.hexagons.size() - 1; h >= 0; h--) {
        Hexagon* hexagon = &cluster.hexagons[h];
        if (hexagon->outputInterface != nullptr) {
            backpropagateOutput(
                cluster.hexagons, hexagon->outputInterface, &cluster.clusterHeader.settings, h);
        }
        if (hexagon->neuronBlocks.empty() || hexagon->header.isInputHexagon) {
            continue;
        }
        SynapseBlock* blocks = getItemData<SynapseBlock>(cluster.attachedHost->synapseBlocks);
        for (uint32_t b = 0; b < hexagon->neuronBlocks.size(); b++) {
            backpropagateNeuron(hexagon, b);
            backpropagateConnections(hexagon, &cluster.hexagons[0], blocks, b);
        }
    }
    cluster.enableCreation = false;
}

/// Synapses with a target, over every section in use.
uint64_t countSynapses(Cluster& cluster)
{
    uint64_t synapses = 0;
    SynapseBlock* blocks = getItemData<SynapseBlock>(cluster.attachedHost->synapseBlocks);
    for (Hexagon& hexagon : cluster.hexagons) {
        for (ConnectionBlock& block : hexagon.connectionBlocks) {
            if (block.targetSynapseBlockPos == UNINIT_STATE_64) {
                continue;
            }
            for (uint32_t i = 0; i < NUMBER_OF_SYNAPSESECTION; i++) {
                if (block.connections[i].origin.blockId == UNINIT_STATE_16) {
                    continue;
                }
                for (const Synapse& s : blocks[block.targetSynapseBlockPos].sections[i].synapses) {
                    synapses += s.targetNeuronId != UNINIT_STATE_8;
                }
            }
        }
    }
    return synapses;
}

double secondsSince(const std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: driver MNIST_DIR [EPOCHS [SEED]]\n");
        return 2;
    }
    const std::string dir = argv[1];
    const int epochs = argc > 2 ? atoi(argv[2]) : 1;
    srand(argc > 3 ? atoi(argv[3]) : 1);
    const auto trainImages = readAll(dir + "/train-images-idx3-ubyte");
    const auto trainLabels = readAll(dir + "/train-labels-idx1-ubyte");
    const auto testImages = readAll(dir + "/t10k-images-idx3-ubyte");
    const auto testLabels = readAll(dir + "/t10k-labels-idx1-ubyte");
    if (trainImages.size() < 16 + INPUTS * TRAIN_ROWS || trainLabels.size() < 8 + TRAIN_ROWS
        || testImages.size() < 16 + INPUTS * TEST_ROWS || testLabels.size() < 8 + TEST_ROWS)
    {
        fprintf(stderr, "%s does not hold the four MNIST IDX files\n", dir.c_str());
        return 1;
    }

    // Static: a cluster and its host are large and live for the whole run.
    static LogicalHost host;
    static Cluster cluster;
    setUp(cluster, host);
    InputInterface& input = cluster.inputInterfaces["picture"];
    OutputInterface& output = cluster.outputInterfaces["label"];
    for (int epoch = 1; epoch <= epochs; epoch++) {
        auto start = std::chrono::steady_clock::now();
        for (uint32_t row = 0; row < TRAIN_ROWS; row++) {
            const uint8_t* pixels = &trainImages[16 + INPUTS * row];
            for (uint32_t k = 0; k < INPUTS; k++) {
                input.inputNeurons[k].value = pixels[k];  // raw 0-255, as the server feeds them
            }
            for (uint32_t o = 0; o < OUTPUTS; o++) {
                output.outputNeurons[o].exprectedVal = trainLabels[8 + row] == o ? 1.0f : 0.0f;
            }
            forward(cluster, true);
            backward(cluster);
        }
        const double trainSeconds = secondsSince(start);
        start = std::chrono::steady_clock::now();
        uint32_t correct = 0;
        for (uint32_t row = 0; row < TEST_ROWS; row++) {
            const uint8_t* pixels = &testImages[16 + INPUTS * row];
            for (uint32_t k = 0; k < INPUTS; k++) {
                input.inputNeurons[k].value = pixels[k];
            }
            forward(cluster, false);
            uint32_t best = 0;
            for (uint32_t o = 1; o < OUTPUTS; o++) {
                if (output.outputNeurons[o].outputVal > output.outputNeurons[best].outputVal) {
                    best = o;
                }
            }
            correct += best == testLabels[8 + row];
        }
        const double requestSeconds = secondsSince(start);
        printf("{\"epoch\":%d,\"train_s\":%.4f,\"request_s\":%.4f,\"accuracy\":%.2f,"
               "\"synapses\":%llu}\n",
               epoch,
               trainSeconds,
               requestSeconds,
               100.0 * correct / TEST_ROWS,
               static_cast<unsigned long long>(countSynapses(cluster)));
        fflush(stdout);
    }
    return 0;
}
